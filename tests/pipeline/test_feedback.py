"""What a run says while it works (issue 22): start-up notes, the sanity bar, the summary line, resume, words."""

from __future__ import annotations

import re

import keras
import pytest
from study_helpers import interrupt_on_call, read_index, write_config

import medxai
from medxai.cli import main
from medxai.metrics.randomisation import weighted_layers
from medxai.pipeline.evaluation import EvaluationSpec, evaluate_run


@pytest.fixture(scope="module")
def named(study):
    """A finished run of the study with class names (progress off)."""
    model = {"path": "model.keras", "class_names": ["normal", "lesion"]}
    methods = ["gradient", {"name": "ig", "steps": 4}]
    summary = medxai.run(write_config(study, "named", model=model, methods=methods))
    return summary.output_dir


def test_the_index_names_labels_and_predictions_after_their_indices(named, study):
    header = next(iter(read_index(named / "index.csv")))
    columns = list(header)
    assert columns.index("label_name") == columns.index("label") + 1
    assert columns.index("predicted_name") == columns.index("predicted") + 1
    words = {"0": "normal", "1": "lesion"}
    ok = [r for r in read_index(named / "index.csv") if r["status"] == "ok"]
    assert ok
    for row in ok:
        assert row["label_name"] == ";".join(words[i] for i in row["label"].split(";"))
        assert row["predicted_name"] == ";".join(words[i] for i in row["predicted"].split(";"))
        assert row["class_name"] == words[row["class_index"]]
    plain = medxai.run(write_config(study, "unnamed", methods=["gradient"]))
    rows = read_index(plain.output_dir / "index.csv")
    assert all(r["label_name"] == "" and r["predicted_name"] == "" for r in rows)
    assert any(r["label"] for r in rows)


def test_the_sanity_check_bar_counts_every_explanation(named, capsys):
    capsys.readouterr()
    seeds = 2
    spec = EvaluationSpec(faithfulness=False, sanity_images=1, sanity_seeds=seeds)
    result = evaluate_run(named, spec, progress=True)  # stderr is no terminal here: plain lines
    assert result.sanity["gradient"]["verdict"] in ("PASS", "FAIL", "undefined")
    err = capsys.readouterr().err
    assert "medxai: loading the model" in err and "medxai: building 2 methods" in err
    layers = len(weighted_layers(keras.saving.load_model(named.parent / "model.keras")))
    total = 2 * (1 + seeds * layers)  # each method on the trained model, then on each seed's copy at each step
    sanity = [line for line in err.splitlines() if line.startswith("sanity check")]
    assert len(sanity) == 10  # one line per tenth
    assert all(re.match(r"sanity check (gradient|integrated_gradients): \d+/\d+ explanations", s) for s in sanity)
    assert f"{total}/{total} explanations (100 %)" in sanity[-1]


def test_the_sanity_check_bar_names_each_method(named, monkeypatch):
    import medxai.pipeline.evaluation as evaluation

    seen: list[tuple[str, float]] = []

    class Bar:
        n = 0

        def __init__(self, total, **kwargs):
            self.total, self.desc = total, kwargs.get("desc")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def set_description(self, desc, refresh=True):
            self.desc = desc

        def update(self, amount=1):
            self.n += amount
            seen.append((self.desc, self.total))

        def close(self):
            pass

    monkeypatch.setattr(evaluation, "progress_bar", Bar)
    evaluate_run(named, EvaluationSpec(faithfulness=False, sanity_images=2, sanity_seeds=3), progress=True)
    sanity = [(desc, total) for desc, total in seen if desc.startswith("sanity check")]
    layers = len(weighted_layers(keras.saving.load_model(named.parent / "model.keras")))
    assert len(sanity) == sanity[0][1] == 2 * (1 + 3 * layers)  # every explanation counted, once
    assert [desc for desc, _ in sanity[:2]] == ["sanity check gradient", "sanity check integrated_gradients"]
    assert {desc for desc, _ in sanity} == {"sanity check gradient", "sanity check integrated_gradients"}


def test_the_summary_line_comes_before_the_evaluation(study, capsys, monkeypatch):
    import medxai.pipeline.study as study_module

    before_evaluation: list[str] = []
    original = study_module.evaluate_run

    def evaluate(*args, **kwargs):
        before_evaluation.append(capsys.readouterr().out)
        return original(*args, **kwargs)

    monkeypatch.setattr(study_module, "evaluate_run", evaluate)
    path = write_config(study, "cli_evaluated", methods=["gradient"], evaluate={"sanity_images": 0})
    assert main(["run", str(path), "--no-progress"]) == 1  # the study's broken images
    out = capsys.readouterr().out
    assert re.search(r"medxai: 7 images \(0 resumed\), 4 maps, 3 errors in [\d.]+ s -> ", before_evaluation[0])
    assert out.lstrip().startswith("method") and "gini" in out  # the table follows, alone
    assert "images (" not in out


def test_a_resumed_runs_bar_starts_at_the_resumed_count(study, monkeypatch, capsys):
    import medxai.pipeline.decoder as decoder_module

    config = write_config(study, "resumed_bar", runtime={"batch_size": 2, "progress": False})
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        medxai.run(config)
    monkeypatch.undo()
    starts: list[float] = []
    original = decoder_module.progress_bar

    def recording(total, **kwargs):
        bar = original(total, **kwargs)
        starts.append(bar.n)
        return bar

    monkeypatch.setattr(decoder_module, "progress_bar", recording)
    monkeypatch.setenv("COLUMNS", "0")  # plain lines
    capsys.readouterr()
    summary = medxai.run(config, progress=True)
    assert summary.resumed == 2 and starts == [2]
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medxai: ") and "/7" in line]
    assert lines and all(int(line.split("/")[0].split()[-1]) >= 2 for line in lines)  # never 0/7
    assert lines[-1].startswith("medxai: 7/7 images (100 %)")


def test_a_zero_width_terminal_gets_plain_lines_from_a_run(study, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "0")
    capsys.readouterr()
    medxai.run(write_config(study, "plain_run", methods=["gradient"], runtime={"batch_size": 1}), progress=True)
    err = capsys.readouterr().err
    lines = re.findall(r"^medxai: (\d)/7 images \((\d+) %\), [\d.]+ maps/s(?:, ETA \S+)?$", err, re.MULTILINE)
    assert lines and lines[-1] == ("7", "100")
    assert "\r" not in err and "|" not in err  # no bar drawn
    assert "medxai: loading the model" in err and "medxai: building 1 method" in err


def test_tensorflows_retracing_warning_is_dropped_and_other_warnings_kept():
    import logging

    from medxai.pipeline.quiet import _not_retracing

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    retracing = "5 out of the last 6 calls to <bound method GradientEngine._predict> triggered tf.function retracing."
    assert _not_retracing(record(retracing)) is False
    assert _not_retracing(record("Layer dense is casting an input tensor from dtype float64")) is True
