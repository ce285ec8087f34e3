"""The domain tokenizer of the tiny planner, trained offline on the kitchen's own text.

    tok = train_domain_tokenizer(texts, vocab_size=2048)
    ids = tok.apply_chat_template(messages, add_generation_prompt=True)

Byte-level BPE (every byte is in the alphabet, so no text is ever unknown) on
top of a word-level pre-tokenizer that keeps names whole: a word containing a
digit (an object name such as `table3`, with its leading space) is always its
own pre-token, so it becomes exactly one token; a run of plain words between
names (` has no players at it`, ` directly on top of it`) is one pre-token too,
so BPE may merge frequent phrases. Observations come out at ~420 tokens
(docs/pipeline.md 8's word-by-word figure is ~480; the system prompt shrinks from ~180
to ~90), which makes cpu-tiny training about 1.6x cheaper per row. The chat
template is Qwen's ChatML (`<|im_start|>role\n...<|im_end|>\n`), so prompts
look the same to the tiny model and to Qwen2.5-Instruct; `<|im_end|>` is the
end-of-sequence token.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)

# Qwen2.5's ChatML without the tool-calling branches. The `generation` markers let
# TRL build assistant-only loss masks when a dataset is in "messages" form.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Pre-tokens, tried in order: a name (a word with a digit, e.g. " table3"); a run of plain words,
# each ending at a word boundary not followed by a digit (so " robot" never swallows "robot1");
# punctuation; whitespace. Unlike GPT-2's split, letters and digits of a name stay together.
_SPLIT = r" ?[A-Za-z_]*[0-9][A-Za-z0-9_]*|(?: ?[A-Za-z_]+(?![A-Za-z0-9_]))+| ?[^\sA-Za-z0-9_]+|\s+"


def train_domain_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> Any:
    """Train a byte-level BPE on `texts`; returns a `PreTrainedTokenizerFast` with the chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok: Any) -> Any:
    """Wrap a `tokenizers.Tokenizer` as a transformers tokenizer with our specials and chat template."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD_TOKEN,
                                   additional_special_tokens=[IM_START], padding_side="left",
                                   truncation_side="left", clean_up_tokenization_spaces=False,
                                   model_max_length=1 << 20)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def dataset_texts(rows: Iterable[dict]) -> Iterable[str]:
    """The text a tokenizer should see for single-turn rows: every message (the system prompt on every
    row too, so its words become whole tokens)."""
    for row in rows:
        for msg in list(row.get("prompt") or []) + list(row.get("completion") or []):
            yield msg.get("role") or ""  # role names appear in every rendered prompt
            yield msg.get("content") or ""
