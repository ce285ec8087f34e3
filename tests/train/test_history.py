"""From trainer log_history to per-step history, metrics and plot CSVs."""

from taskplan.train.history import GRPO_PLOTS, last_value, mean_value, step_history, summary, write_plots

LOG = [
    {"val_accuracy": 0.25, "val_seconds": 1.0, "step": 0},
    {"loss": 0.5, "reward": 0.4, "reward_std": 0.2, "kl": 0.0, "rewards/exact_match_reward/mean": 0.4,
     "rewards/format_reward/mean": 1.0, "num_tokens": 100, "step": 1},
    {"val_accuracy": 0.5, "val_seconds": 1.0, "step": 2},
    {"loss": 0.4, "reward": 0.6, "reward_std": 0.1, "kl": 0.01, "step": 2, "tokens_per_second": 50.0},
    {"train_runtime": 3.0, "train_loss": 0.45, "step": 2},
]


def test_entries_of_a_step_are_merged_and_renamed():
    hist = step_history(LOG)
    assert [r["step"] for r in hist] == [0, 1, 2]
    assert hist[1]["reward_mean"] == 0.4 and hist[1]["exact_match"] == 0.4 and hist[1]["format"] == 1.0
    assert hist[2] == {"step": 2, "val_accuracy": 0.5, "val_seconds": 1.0, "loss": 0.4, "reward_mean": 0.6,
                       "reward_std": 0.1, "kl": 0.01, "tokens_per_second": 50.0}
    assert summary(LOG) == {"train_runtime": 3.0, "train_loss": 0.45}


def test_aggregates():
    hist = step_history(LOG)
    assert last_value(hist, "val_accuracy") == 0.5
    assert mean_value(hist, "reward_mean") == 0.5
    assert mean_value(hist, "reward_mean", last=1) == 0.6
    assert last_value(hist, "missing") is None and mean_value(hist, "missing") is None


def test_plot_csvs(tmp_path):
    write_plots(step_history(LOG), tmp_path, GRPO_PLOTS)
    reward = (tmp_path / "reward.csv").read_text().splitlines()
    assert reward == ["step,reward_mean,reward_std,exact_match,format", "1,0.4,0.2,0.4,1", "2,0.6,0.1,,"]
    assert (tmp_path / "val_accuracy.csv").read_text().splitlines() == [
        "step,val_accuracy,train_seconds", "0,0.25,", "2,0.5,"], "train_seconds is empty when not logged"
