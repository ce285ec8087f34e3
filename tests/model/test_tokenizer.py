"""Domain tokenizer: object names are single tokens, chat template is ChatML, nothing is unknown."""

from taskplan.model.tokenizer import IM_END, dataset_texts, train_domain_tokenizer


def _tok(tiny_rows):
    return train_domain_tokenizer(dataset_texts(tiny_rows["train"]), vocab_size=512)


def test_object_names_are_single_tokens(tiny_rows):
    tok = _tok(tiny_rows)
    for name in (" table1", " robot1", " patty1"):
        assert len(tok(name)["input_ids"]) == 1, f"{name!r} should be one token"


def test_round_trip_and_unseen_text(tiny_rows):
    tok = _tok(tiny_rows)
    text = "Action: Move robot1 from table1 to table2 — ünïcode 42%"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: no unknown tokens


def test_chat_template_renders_prompt_and_completion(tiny_rows):
    tok = _tok(tiny_rows)
    row = tiny_rows["train"][0]
    prompt = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert full.startswith(prompt), "the prompt must be a prefix of prompt + completion (SFT completion mask)"
    assert full.endswith(row["completion"][0]["content"] + IM_END + "\n")
    ids_prompt = tok(prompt)["input_ids"]
    assert tok(full)["input_ids"][:len(ids_prompt)] == ids_prompt, "token prefix must match too"
    assert tok.eos_token == IM_END and tok.pad_token != tok.eos_token
