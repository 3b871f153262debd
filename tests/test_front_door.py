"""The light front door: configs load and validate, and methods are listed, without TensorFlow."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO)


def test_loading_a_config_and_listing_methods_imports_no_tensorflow():
    result = run_python(
        """
        import sys
        from medxai.pipeline.config import load_config
        from medxai.methods.registry import available_methods, method_parameters
        from medxai import IntegratedGradients, SmoothGrad
        config = load_config("configs/demo.yaml")
        assert [m.name for m in config.methods][:3] == ["integrated_gradients", "gradient", "smoothgrad"]
        assert method_parameters(IntegratedGradients)["steps"] == 32 and "smoothgrad" in available_methods()
        SmoothGrad.check_polarity({"statistic": "mean"}, "negative")
        loaded = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})
        assert not loaded, loaded
        """
    )
    assert result.returncode == 0, result.stderr


def test_an_invalid_config_is_refused_before_tensorflow_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"model: {{path: {REPO / 'data_samples' / 'model.keras'}}}\ndata: "
        f"{{manifest: {REPO / 'data_samples' / 'study' / 'manifest.csv'}}}\noutput: "
        f"{{dir: {tmp_path / 'out'}}}\nmethods: [smoothgard]\n"
    )
    result = run_python(
        f"""
        import sys
        from medxai.cli import main
        code = main(["validate", {str(bad)!r}])
        assert code == 2, code
        assert "tensorflow" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
    assert "did you mean 'smoothgrad'" in result.stderr


def test_medxai_methods_imports_no_tensorflow():
    result = run_python(
        """
        import sys
        from medxai.cli import main
        assert main(["methods"]) == 0
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
    assert "integrated_gradients (aliases: ig)" in result.stdout
