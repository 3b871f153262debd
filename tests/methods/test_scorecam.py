"""Score-CAM (Wang et al. 2020): a hand-written reference, 3D, layers, batching, logits, refusals."""

import keras
import numpy as np
import pytest
from analytic_models import small_cnn

import medxai
from medxai.methods._engine.forward import ForwardEngine
from medxai.preprocess import resize_spatial


def pooled_cnn(shape=(8, 8, 2), *, activation=None, seed=2):
    """conv -> max pool -> conv ("late", half resolution; channel 0 constant 0.3) -> GAP -> Dense."""
    keras.utils.set_random_seed(seed)
    conv = keras.layers.Conv2D if len(shape) == 3 else keras.layers.Conv3D
    pool = keras.layers.MaxPooling2D if len(shape) == 3 else keras.layers.MaxPooling3D
    gap = keras.layers.GlobalAveragePooling2D if len(shape) == 3 else keras.layers.GlobalAveragePooling3D
    inputs = keras.Input(shape)
    h = pool(name="pool")(conv(4, 3, padding="same", activation="relu", name="early")(inputs))
    late = conv(5, 3, padding="same", activation="relu", name="late")
    model = keras.Model(inputs, keras.layers.Dense(3, activation=activation)(gap()(late(h))))
    kernel, bias = late.get_weights()
    kernel[..., 0], bias[0] = 0.0, 0.3  # a constant channel: its mask is all zeros
    late.set_weights([kernel, bias])
    return model


def reference(model, layer, x, target, weights="softmax", baseline=0.0):
    """Score-CAM of one image by hand: one model call per mask (``model`` outputs the explained scores)."""
    a = keras.Model(model.inputs[0], model.get_layer(layer).output)(x[None]).numpy()[0].astype(np.float64)
    scores = []
    for k in range(a.shape[-1]):
        m = resize_spatial(a[..., k : k + 1], x.shape[:-1])[..., 0].astype(np.float64)
        m = (m - m.min()) / (m.max() - m.min()) if np.ptp(a[..., k]) > 0 else np.zeros_like(m)
        masked = baseline + m[..., None] * (x - baseline)
        scores.append(float(model(masked[None].astype(np.float32))[0, target]))
    s = np.array(scores) - float(model(np.full((1, *x.shape), baseline, np.float32))[0, target])
    w = np.exp(s - s.max()) / np.exp(s - s.max()).sum() if weights == "softmax" else s
    cam = np.maximum((a * w).sum(axis=-1), 0.0)
    return np.repeat(resize_spatial(cam[..., None], x.shape[:-1]), x.shape[-1], axis=-1)


def images(shape, n=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize(
    "shape, layer, weights, baseline, targets",
    [
        ((8, 8, 2), None, "softmax", 0.0, [0, 2]),  # the paper: zero baseline, softmax over channels
        ((8, 8, 2), None, "increase", 0.5, [1, 1]),  # eq. 8-9 as written, a constant baseline
        ((8, 8, 2), "early", "softmax", 0.0, [0, 2]),  # a full-resolution layer
        ((4, 6, 6, 1), None, "increase", 0.0, [1, 2]),  # 3D
    ],
    ids=["softmax", "increase", "early", "3d"],
)
def test_matches_a_hand_written_reference(shape, layer, weights, baseline, targets):
    model = pooled_cnn(shape)
    x = images(shape)
    method = medxai.ScoreCAM(model, layer=layer, weights=weights, baseline=baseline, batch_size=3)
    assert method.layer == (layer or "late")
    got = method.attribute(x, targets)
    assert got.shape == x.shape and got.dtype == np.float32 and got.min() >= 0
    for i, target in enumerate(targets):
        expected = reference(model, method.layer, x[i], target, weights, baseline)
        assert expected.max() > 0
        np.testing.assert_allclose(got[i], expected, rtol=2e-4, atol=1e-6)


def test_batch_size_does_not_change_results_and_chunks_hold_several_images(monkeypatch):
    model = pooled_cnn()
    x, targets = images((8, 8, 2), n=3), [0, 1, 2]
    calls = []
    original = ForwardEngine._function

    def counted(self, perturbation, with_weights):
        fn = original(self, perturbation, with_weights)
        return lambda *args: (calls.append(int(args[0].shape[0])), fn(*args))[1]

    monkeypatch.setattr(ForwardEngine, "_function", counted)
    results = [medxai.ScoreCAM(model, batch_size=b).attribute(x, targets) for b in (1, 7, 64)]
    # 3 images x 5 channels = 15 masked copies: 15 calls of one image, then 3 (up to 2 images each), then 1
    assert len(calls) == 15 + 3 + 1 and calls[-1] == 3 and max(calls[15:18]) == 2
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-5, atol=1e-7)


def test_logits_are_explained_by_default():
    softmax, linear = pooled_cnn(activation="softmax"), pooled_cnn()  # the same weights
    x = images((8, 8, 2))
    default = medxai.ScoreCAM(softmax)
    assert "softmax removed" in default.engine.explained
    np.testing.assert_allclose(default.attribute(x, 1), medxai.ScoreCAM(linear).attribute(x, 1), rtol=1e-5, atol=1e-7)
    probabilities = medxai.ScoreCAM(softmax, output="probabilities")
    np.testing.assert_allclose(
        probabilities.attribute(x, [1, 1])[0], reference(softmax, "late", x[0], 1), rtol=2e-4, atol=1e-6
    )
    assert not np.allclose(default.attribute(x, 1), probabilities.attribute(x, 1))


def test_a_model_without_spatial_layers_is_refused_and_layer_is_checked():
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match=r"layer: the model has no layer with 2D .* outputs"):
        medxai.ScoreCAM(model)
    with pytest.raises(ValueError, match=r"layer 'nope' cannot be used: .*no such layer"):
        medxai.ScoreCAM(pooled_cnn(), layer="nope")


def test_names_polarity_settings_and_delta():
    model = small_cnn((8, 8, 1))
    for name in ("scorecam", "score_cam", "Score-CAM"):
        assert type(medxai.get_method(name, model)) is medxai.ScoreCAM
    assert medxai.ScoreCAM.non_negative({})
    for polarity in ("positive", "negative"):
        with pytest.raises(ValueError, match=f"polarity '{polarity}' with scorecam"):
            medxai.ScoreCAM(model, heatmap={"polarity": polarity})
    with pytest.raises(ValueError, match="weights must be one of softmax, increase"):
        medxai.ScoreCAM(model, weights="probabilities")
    with pytest.raises(ValueError, match="unknown baseline"):
        medxai.ScoreCAM(model, baseline="grey")
    method = medxai.ScoreCAM(model, weights="increase", baseline="blur")
    assert method.params()["weights"] == "increase" and method.params()["baseline"] == "blur"
    explanation = method.explain(images((8, 8, 1)), [0, 1])
    np.testing.assert_array_equal(explanation.evaluations, [1 + 8 + 1] * 2)  # A, 8 masked copies, F(b)
    with pytest.raises(ValueError, match="no completeness delta"):
        method.attribute(images((8, 8, 1), n=1), 0, return_delta=True)
