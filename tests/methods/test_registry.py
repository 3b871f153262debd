import sys
import textwrap

import numpy as np
import pytest
from analytic_models import linear_model

import medxai
from medxai.methods import registry


@pytest.mark.parametrize(
    "name,cls",
    [
        ("integrated_gradients", medxai.IntegratedGradients),
        ("ig", medxai.IntegratedGradients),
        ("Integrated-Gradients", medxai.IntegratedGradients),
        ("gradient", medxai.Gradient),
        ("saliency", medxai.Gradient),
        ("smoothgrad", medxai.SmoothGrad),
    ],
)
def test_names_and_aliases(name, cls):
    model, _, _ = linear_model((2, 2, 1))
    method = medxai.get_method(name, model, batch_size=4)
    assert type(method) is cls and method.batch_size == 4


def test_available_methods_lists_every_name():
    names = medxai.available_methods()
    assert {"integrated_gradients", "ig", "gradient", "saliency", "smoothgrad"} <= set(names)
    assert set(registry.canonical_methods()) >= {"integrated_gradients", "gradient", "smoothgrad"}


def test_unknown_name_lists_known_ones():
    model, _, _ = linear_model((2, 2, 1))
    with pytest.raises(
        ValueError, match=r"unknown method 'no_such_method' \(known: .*integrated_gradients.*smoothgrad"
    ):
        medxai.get_method("no_such_method", model)


def test_method_parameters_are_introspected():
    params = registry.method_parameters(medxai.IntegratedGradients)
    assert params["steps"] == 32 and params["rule"] is None and "model" not in params


def test_plugin_through_a_real_entry_point(tmp_path, monkeypatch):
    package = tmp_path / "medxai_demo_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from medxai import XAIMethod

            class InputTimesOne(XAIMethod):
                aliases = ("x_times_one",)

                def __init__(self, model, *, factor=1.0, **kwargs):
                    super().__init__(model, **kwargs)
                    self.factor = factor

                def attribute(self, images, targets, *, return_delta=False):
                    images, targets = self.engine.check_inputs(images, targets)
                    return images * self.factor
            """
        )
    )
    dist = tmp_path / "medxai_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: medxai-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[medxai.methods]\ninput_times_one = medxai_demo_plugin:InputTimesOne\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh_plugins()
    try:
        names = medxai.available_methods()
        assert names["input_times_one"].__name__ == "InputTimesOne"
        assert names["x_times_one"] is names["input_times_one"]
        model, _, _ = linear_model((2, 2, 1))
        method = medxai.get_method("input_times_one", model, factor=2.0)
        x = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
        np.testing.assert_array_equal(method.attribute(x, 0), 2 * x)
        assert method.compute_heatmap(x[0], 0)[1, 1] == 1.0
    finally:
        monkeypatch.undo()
        sys.modules.pop("medxai_demo_plugin", None)
        registry.refresh_plugins()
    assert "input_times_one" not in medxai.available_methods()


def test_broken_plugin_warns_and_is_skipped(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[medxai.methods]\nbroken = no_such_module:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh_plugins()
    try:
        with pytest.warns(UserWarning, match="broken"):
            names = medxai.available_methods()
        assert "broken" not in names and "ig" in names
    finally:
        monkeypatch.undo()
        registry.refresh_plugins()


def test_register_method_in_process():
    class Dummy(medxai.Gradient):
        name = "dummy_gradient"
        aliases = ()

    try:
        medxai.register_method(Dummy)
        assert medxai.available_methods()["dummy_gradient"] is Dummy
        with pytest.raises(ValueError, match="already taken"):
            medxai.register_method(type("Other", (medxai.Gradient,), {"name": "dummy_gradient", "aliases": ()}))
        with pytest.raises(ValueError, match="not a subclass"):
            medxai.register_method(int)
    finally:
        registry._registered.pop("dummy_gradient", None)


def test_the_method_list_and_the_exports_derive_from_the_modules():
    """Adding a method is one module: the registry, medxai.methods and the package root all find it there."""
    import pkgutil

    import medxai
    import medxai.methods as package
    from medxai.methods.registry import builtin_methods

    modules = {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")} - {
        "base",
        "registry",
    }
    assert {cls.__module__.rsplit(".", 1)[1] for cls in builtin_methods()} == modules
    names = {cls.__name__ for cls in builtin_methods()}
    assert names <= set(medxai.__all__) and names <= set(package.__all__)
    assert all(getattr(medxai, name) is getattr(package, name) for name in names)
    assert "GradientEngine" not in medxai.__all__ and "normalize" not in medxai.__all__  # internals stay inside
