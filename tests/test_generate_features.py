"""Block features (boii hfft, GRUV fft), mu-law, normalisation: round trips."""

from __future__ import annotations

import numpy as np
import pytest

from auralize.generate import features as F


@pytest.mark.parametrize("kind,block,size", [("hfft", 512, 1022), ("fft", 11025, 22050),
                                             ("hfft", 64, 126), ("fft", 64, 128)])
def test_feature_sizes(kind, block, size):
    assert F.feature_size(kind, block) == size
    x = np.random.default_rng(0).uniform(-1, 1, (3, block))
    assert F.blocks_to_features(x, kind).shape == (3, size)


@pytest.mark.parametrize("kind", ["hfft", "fft"])
@pytest.mark.parametrize("mu", [None, 4.0])
def test_round_trip_restores_each_block(kind, mu):
    rng = np.random.default_rng(1)
    blocks = rng.uniform(-1, 1, (8, 512)).astype(np.float32)
    blocks[0] = 0.0  # silence
    blocks[1] = np.sin(np.arange(512) * 0.3) * 0.9
    feats = F.blocks_to_features(blocks, kind, mu)
    back = F.features_to_blocks(feats, kind, mu)
    assert back.shape == blocks.shape
    np.testing.assert_allclose(back, blocks, atol=2e-5, rtol=0)


def test_hfft_matches_the_seed_transform():
    x = np.random.default_rng(2).uniform(-1, 1, 512)
    np.testing.assert_allclose(F.blocks_to_features(x, "hfft"), np.fft.hfft(x), rtol=1e-5,
                               atol=1e-3)
    np.testing.assert_allclose(np.fft.ihfft(np.fft.hfft(x)).real, x, atol=1e-12)


def test_mu_law_round_trip_and_range():
    x = np.linspace(-1, 1, 1001)
    y = F.mu_law(x, 4.0)
    assert np.all(np.abs(y) <= 1.0 + 1e-12) and np.all(np.diff(y) > 0)
    np.testing.assert_allclose(F.mu_law_inverse(y, 4.0), x, atol=1e-12)


@pytest.mark.parametrize("kind", ["hfft", "fft"])
@pytest.mark.parametrize("mu", [None, 4.0])
def test_normalised_round_trip(kind, mu, tmp_path):
    rng = np.random.default_rng(3)
    audio = (0.5 * np.sin(np.arange(40 * 256) * 0.05) + 0.1 * rng.standard_normal(40 * 256))
    feats = F.audio_to_features(audio, 256, kind, mu)
    norm = F.Normalizer.fit(feats)
    z = norm.apply(feats)
    # Actually applied: each feature ~ zero mean, unit variance.
    assert np.abs(z.mean(axis=0)).max() < 1e-3
    varying = feats.std(axis=0) > 1e-6  # fft: imag of DC and Nyquist are always 0
    assert varying.sum() >= feats.shape[1] - 2
    assert np.abs(z.std(axis=0)[varying] - 1).max() < 1e-2
    assert np.isfinite(z).all()
    norm2 = F.Normalizer.load(norm.save(tmp_path / "norm.npz"))
    back = F.features_to_audio(norm2.undo(z), kind, mu)
    np.testing.assert_allclose(back[: audio.size], np.clip(audio, -1, 1), atol=5e-4)


def test_inverse_is_finite_and_clipped_on_garbage():
    f = np.full((2, 126), np.nan, np.float32)
    f[1] = 1e30
    out = F.features_to_audio(f, "hfft", 4.0)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0


def test_unknown_kind():
    with pytest.raises(ValueError, match="hfft"):
        F.blocks_to_features(np.zeros((1, 8)), "stft")


@pytest.mark.parametrize("kind", ["hfft", "fft"])
@pytest.mark.parametrize("mu", [None, 4.0])
def test_quantised_round_trip(kind, mu):
    """With quantisation, features -> inverse restores the quantised block exactly,
    and the quantised block is within half a step (in the companded domain) of the input."""
    bits = 8
    codec = F.BlockCodec(kind, mu or 0.0, bits)
    blocks = np.random.default_rng(4).uniform(-1, 1, (6, 256))
    back = codec.decode(codec.encode(blocks)).astype(np.float64)
    y = F.mu_law(blocks, mu) if mu else blocks
    y_back = F.mu_law(back, mu) if mu else back
    step = 2.0 / (2**bits - 1)
    assert np.abs(y_back - y).max() <= step / 2 + 1e-5
    levels = (y_back + 1) / step  # on the quantiser's grid
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    # Fewer distinct values than samples: it really quantised.
    assert np.unique(np.round(levels)).size <= 2**bits
    # A second pass changes nothing: decode snaps a prediction to the same grid.
    np.testing.assert_allclose(codec.decode(codec.encode(back)), back, atol=2e-5)


def test_quantize_levels_and_off():
    y = np.linspace(-1.2, 1.2, 97)
    q = F.quantize(y, 2)  # 4 levels: -1, -1/3, 1/3, 1
    np.testing.assert_allclose(np.unique(q), [-1, -1 / 3, 1 / 3, 1])
    assert np.array_equal(F.quantize(y, 0), y)
