"""The shared gradient engine: batch-size independence and bounded chunks."""

import numpy as np
import pytest
from analytic_models import small_cnn

from medxai import Gradient, IntegratedGradients, SmoothGrad
from medxai.methods._engine.engine import GradientEngine


def rand(shape, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(np.float32)


METHODS = {
    "ig": lambda m, bs: IntegratedGradients(m, steps=9, baseline="uniform", n_baselines=2, batch_size=bs),
    "gradient": lambda m, bs: Gradient(m, batch_size=bs),
    "smoothgrad": lambda m, bs: SmoothGrad(m, samples=5, statistic="variance", batch_size=bs),
    "smooth_ig": lambda m, bs: SmoothGrad(m, samples=2, base="ig", base_params={"steps": 5}, batch_size=bs),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_batch_size_never_changes_the_result(name):
    model = small_cnn((8, 8, 1))
    x = rand((3, 8, 8, 1))
    results = [METHODS[name](model, bs).attribute(x, [0, 1, 1]) for bs in (1, 7, 64)]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=2e-5, atol=1e-7)


def test_chunks_are_bounded_by_batch_size_and_mix_images(monkeypatch):
    model = small_cnn((8, 8, 1))
    x = rand((3, 8, 8, 1))
    ig = IntegratedGradients(model, steps=10, batch_size=7)
    seen = []
    original = ig.engine._chunk_fn

    def spy(images, row_image, *args):
        seen.append((len(row_image), len(images)))
        return original(images, row_image, *args)

    monkeypatch.setattr(ig.engine, "_chunk_fn", spy)
    ig.attribute(x, 0)
    assert sum(rows for rows, _ in seen) == 3 * 10  # every path point exactly once
    assert max(rows for rows, _ in seen) <= 7
    assert any(images > 1 for _, images in seen)  # several images share a chunk


def test_methods_own_their_engine_and_share_one_only_when_given():
    model = small_cnn((8, 8, 1))
    assert Gradient(model).engine is not IntegratedGradients(model).engine
    engine = GradientEngine(model, "logits")
    assert Gradient(model, engine=engine).engine is IntegratedGradients(model, engine=engine).engine is engine
    smooth = SmoothGrad(model, samples=2, engine=engine)
    assert smooth.base.engine is engine
    with pytest.raises(ValueError, match="explain='logits'.*explain='probabilities'"):
        Gradient(model, output="probabilities", engine=engine)
    with pytest.raises(ValueError, match="another model"):
        Gradient(small_cnn((8, 8, 1)), engine=engine)


def test_model_is_called_in_inference_mode():
    import keras

    inputs = keras.Input((8, 8, 1))
    dropped = keras.layers.Dropout(0.9)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(dropped))
    x = rand((2, 8, 8, 1))
    a = Gradient(model, absolute=False).attribute(x, 0)
    np.testing.assert_allclose(a.reshape(2, -1), np.tile(model.layers[-1].get_weights()[0][:, 0], (2, 1)), rtol=1e-6)


@pytest.mark.parametrize(
    "images,targets,match",
    [
        (np.zeros((2, 8, 8, 3)), 0, "shape"),
        (np.zeros((2, 8, 8)), 0, "shape"),
        (np.zeros((0, 8, 8, 1)), 0, "empty"),
        (np.full((1, 8, 8, 1), np.nan), 0, "NaN"),
        (np.zeros((2, 8, 8, 1)), [0], "one int or 2 ints"),
        (np.zeros((1, 8, 8, 1)), 5, "out of range.*2 classes"),
        (np.zeros((1, 8, 8, 1)), -1, "out of range"),
        (np.array([["a"]]), 0, "numeric"),
    ],
)
def test_bad_inputs_fail_clearly(images, targets, match):
    model = small_cnn((8, 8, 1))
    with pytest.raises(ValueError, match=match):
        Gradient(model).attribute(images, targets)


def test_xla_gives_the_same_attributions():
    model = small_cnn((8, 8, 1))
    x = rand((3, 8, 8, 1))
    plain = IntegratedGradients(model, steps=6, batch_size=4).explain(x, [0, 1, 0])
    compiled = IntegratedGradients(model, steps=6, batch_size=4, jit=True)
    assert compiled.engine.jit and compiled.engine is not IntegratedGradients(model).engine
    result = compiled.explain(x, [0, 1, 0])
    np.testing.assert_allclose(result.attributions, plain.attributions, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.delta, plain.delta, atol=1e-4)


def test_mixed_precision_explains_a_half_precision_copy():
    model = small_cnn((8, 8, 1))
    x = rand((2, 8, 8, 1))
    mixed = IntegratedGradients(model, steps=8, precision="mixed")
    assert mixed.engine.precision == "mixed" and mixed.engine is not IntegratedGradients(model, steps=8).engine
    assert {layer.dtype_policy.compute_dtype for layer in mixed.engine.model.layers[1:]} <= {"bfloat16", "float16"}
    assert all(
        layer.dtype_policy.compute_dtype == "float32" for layer in model.layers[1:]
    )  # the user's model is untouched
    full = IntegratedGradients(model, steps=8).explain(x, [0, 1])
    half = mixed.explain(x, [0, 1])
    assert half.attributions.dtype == np.float32
    # half precision keeps the picture (rank order) but not float32 accuracy
    assert np.corrcoef(half.attributions.ravel(), full.attributions.ravel())[0, 1] > 0.95
    with pytest.raises(ValueError, match="precision"):
        IntegratedGradients(model, precision="half")


def test_the_precision_a_model_really_computes_in_is_recorded():
    """Issue 18, item 6: a model built under a global mixed policy computes in half precision whatever was asked."""
    import keras

    plain = small_cnn((8, 8, 1))
    assert Gradient(plain).params()["precision"] == "float32"
    assert Gradient(plain, precision="mixed").params()["precision"].startswith("mixed_")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        half = small_cnn((8, 8, 1))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for method in (Gradient(half), IntegratedGradients(half, steps=2)):
        assert method.params()["precision"] == "mixed_bfloat16 (the model's own dtype policy)"


@pytest.mark.parametrize("build", ["smoothgrad", "guided_ig", "integrated_gradients", "rise", "lime"])
def test_every_seed_follows_the_one_rule(build):
    import medxai

    with pytest.raises(ValueError, match=r"seed must be an integer >= 0, got -1"):
        medxai.get_method(build, small_cnn((8, 8, 1)), seed=-1)
