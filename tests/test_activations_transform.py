"""Feature maps -> audio: exactness against numpy, schemes, normalisation, OLA, mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auralize.activations import activations_to_audio, mix_banks, stretch
from auralize.activations.mix import BankMixer
from auralize.activations.transform import MATMUL_MAX_W, normalize_, rows_ifft_real, rows_ola
from auralize.errors import AuralizeError


def netsounds_reference(maps: np.ndarray, scheme: str = "sum") -> np.ndarray:
    """netsounds as described: per-row numpy ifft (real part), rows concatenated,
    per-filter min/max to [-1, 1] (constant -> 0), then sum (renormalised) / concat / none."""
    sigs = []
    for fmap in maps:
        s = np.concatenate([np.fft.ifft(row).real for row in fmap])
        lo, hi = s.min(), s.max()
        sigs.append(2 * (s - lo) / (hi - lo) - 1 if hi > lo else np.zeros_like(s))
    if scheme == "sum":
        s = np.sum(sigs, axis=0)
        lo, hi = s.min(), s.max()
        return 2 * (s - lo) / (hi - lo) - 1 if hi > lo else np.zeros_like(s)
    if scheme == "concat":
        return np.concatenate(sigs)
    return np.stack(sigs)


@pytest.mark.parametrize("w", [1, 2, 3, 7, 8, 61, 125, 128, MATMUL_MAX_W + 3])
def test_ifft_rows_equal_numpy_per_row_reference(w):
    rng = np.random.default_rng(w)
    maps = rng.standard_normal((3, 4, w))
    ref = np.stack([np.concatenate([np.fft.ifft(r).real for r in m]) for m in maps])
    got = rows_ifft_real(torch.from_numpy(maps)).reshape(3, -1).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    got32 = rows_ifft_real(torch.from_numpy(maps).float()).reshape(3, -1).numpy()
    np.testing.assert_allclose(got32, ref, rtol=0, atol=2e-6)


def test_known_spectra_give_known_cosines():
    """A row holding one spectral line k gives cos(2 pi k n / W) / W; amplitudes add."""
    w, h = 64, 3
    maps = np.zeros((1, h, w))
    maps[0, 0, 5] = 1.0
    maps[0, 1, 0] = 2.0  # DC: constant 2 / W
    maps[0, 2, 3] = 1.0
    maps[0, 2, 10] = 0.5
    n = np.arange(w)
    expected = np.concatenate([
        np.cos(2 * np.pi * 5 * n / w) / w,
        np.full(w, 2.0 / w),
        (np.cos(2 * np.pi * 3 * n / w) + 0.5 * np.cos(2 * np.pi * 10 * n / w)) / w,
    ])
    raw = activations_to_audio(torch.from_numpy(maps), "none", normalize=None)
    np.testing.assert_allclose(raw[0].numpy(), expected, atol=1e-12)
    ref = np.concatenate([np.fft.ifft(r).real for r in maps[0]])
    np.testing.assert_allclose(raw[0].numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("scheme", ["sum", "concat", "none"])
def test_schemes_match_netsounds_reference(scheme):
    rng = np.random.default_rng(1)
    maps = np.maximum(rng.standard_normal((6, 9, 13)), 0)  # ReLU-like
    maps[2] = 0.0  # a dead filter
    got = activations_to_audio(torch.from_numpy(maps), scheme).numpy()
    ref = netsounds_reference(maps, scheme)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-10)
    got32 = activations_to_audio(torch.from_numpy(maps).float(), scheme).numpy()
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref, atol=2e-5)


def test_shapes_lengths_and_range():
    maps = torch.relu(torch.randn(1, 5, 7, 11))
    assert activations_to_audio(maps, "sum").shape == (77,)
    assert activations_to_audio(maps, "concat").shape == (5 * 77,)
    assert activations_to_audio(maps, "none").shape == (5, 77)
    assert activations_to_audio(maps[0, 0], "sum").shape == (77,)  # one (H, W) filter
    for scheme in ("sum", "concat", "none"):
        for method in ("ifft", "ola"):
            out = activations_to_audio(maps, scheme, method=method)
            assert torch.isfinite(out).all()
            assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    per_filter = activations_to_audio(maps, "none")
    assert torch.allclose(per_filter.amin(dim=1), torch.full((5,), -1.0), atol=1e-6)
    assert torch.allclose(per_filter.amax(dim=1), torch.full((5,), 1.0), atol=1e-6)


def test_weak_filter_is_not_drowned_and_dead_filter_is_silent():
    maps = torch.zeros(3, 4, 8)
    maps[0] = torch.rand(4, 8) * 1e-9  # very weak but alive
    maps[1] = torch.rand(4, 8) * 1e3
    out = activations_to_audio(maps, "none")
    assert out[0].abs().max() == pytest.approx(1.0, abs=1e-5)
    assert torch.count_nonzero(out[2]) == 0
    assert torch.count_nonzero(activations_to_audio(torch.zeros(2, 3, 4), "sum")) == 0


def test_non_finite_maps_give_finite_audio():
    maps = torch.rand(4, 5, 6)
    maps[1, 2, 3] = float("nan")
    maps[2, 0, 0] = float("inf")
    for scheme in ("sum", "concat", "none"):
        out = activations_to_audio(maps, scheme)
        assert torch.isfinite(out).all()
    out = normalize_(torch.tensor([[float("nan"), 1.0, 3.0]]))
    assert torch.isfinite(out).all()


def test_chunking_does_not_change_the_result():
    maps = torch.relu(torch.randn(37, 9, 10, dtype=torch.float64))
    for scheme in ("sum", "concat", "none"):
        whole = activations_to_audio(maps, scheme, chunk_elems=1 << 30)
        for chunk in (1, 90, 1000):
            np.testing.assert_allclose(
                activations_to_audio(maps, scheme, chunk_elems=chunk).numpy(), whole.numpy(),
                atol=1e-12)


def test_ola_equal_rows_reproduce_ifft_exactly():
    rng = np.random.default_rng(3)
    row = rng.random(16)
    maps = torch.from_numpy(np.tile(row, (2, 6, 1)))
    np.testing.assert_allclose(rows_ola(maps).numpy(),
                               rows_ifft_real(maps).reshape(2, -1).numpy(), atol=1e-12)


def test_ola_removes_clicks_at_row_boundaries():
    """Rows alternate between a cosine (one spectral line) and a constant (DC only): the
    ifft method jumps by about 2/W at every row boundary; the cross-fade does not."""
    w, h = 32, 20
    maps = torch.zeros(1, h, w, dtype=torch.float64)
    maps[0, 0::2, 4] = 1.0  # cos(2 pi 4 n / W) / W
    maps[0, 1::2, 0] = 3.0  # constant 3 / W
    ifft = activations_to_audio(maps, "sum", method="ifft", normalize=None)
    ola = activations_to_audio(maps, "sum", method="ola", normalize=None)
    assert ola.shape == ifft.shape == (h * w,)
    boundary = torch.arange(1, h) * w - 1
    assert ifft.diff().abs()[boundary].min() > 1.9 / w
    # Largest step anywhere in the OLA signal: only the cosine's own slope (2 pi 4 / W / W).
    assert ola.diff().abs().max() < 0.4 * ifft.diff().abs().max()
    assert ola.diff().abs().max() < 1.1 * (2 * np.pi * 4 / w) / w + 3.0 / w * np.pi / w


def test_bad_arguments_raise_one_line_errors():
    maps = torch.rand(2, 3, 4)
    with pytest.raises(AuralizeError, match="scheme"):
        activations_to_audio(maps, "average")
    with pytest.raises(AuralizeError, match="method"):
        activations_to_audio(maps, method="istft")
    with pytest.raises(AuralizeError, match="batch"):
        activations_to_audio(torch.rand(2, 2, 3, 4))
    with pytest.raises(AuralizeError, match="shape"):
        activations_to_audio(torch.rand(2, 2, 2, 3, 4))
    with pytest.raises(AuralizeError, match="empty"):
        activations_to_audio(torch.rand(0, 3, 4))


def test_stretch_and_mix():
    x = torch.tensor([0.0, 1.0, 0.0])
    s = stretch(x, 5)
    np.testing.assert_allclose(s.numpy(), [0, 0.5, 1, 0.5, 0], atol=1e-7)
    a = torch.linspace(-1, 1, 1000)
    b = torch.tensor([1.0, -1.0])
    m = mix_banks([a, b], "sum", normalize=None)
    assert m.shape == (1000,)
    np.testing.assert_allclose(m.numpy(), (a + torch.linspace(1, -1, 1000)).numpy(), atol=1e-6)
    mult = mix_banks([a, b], "multiply")
    assert mult.shape == (1000,) and mult.abs().max() == pytest.approx(1.0)
    banks = [torch.rand(5, 50) * 2 - 1, torch.rand(200) * 2 - 1, torch.rand(7) * 2 - 1]
    mixed = mix_banks(banks)
    assert mixed.shape == (200,) and torch.isfinite(mixed).all()
    assert mixed.abs().max() == pytest.approx(1.0)
    with pytest.raises(AuralizeError):
        BankMixer(10, "divide")
    with pytest.raises(AuralizeError):
        mix_banks([])


def test_concat_result_is_one_buffer_of_the_output_size():
    """Chunks are written straight into the result: no hidden complex or oversized buffer
    comes back with it (memory over whole images is measured in test_activations_memory)."""
    maps = torch.relu(torch.randn(64, 40, 40))
    out = activations_to_audio(maps, "concat", chunk_elems=1 << 12)
    assert out.shape == (64 * 1600,)
    assert out.untyped_storage().nbytes() == 64 * 1600 * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_runs_on_the_maps_device():  # pragma: no cover - GPU machines only
    maps = torch.relu(torch.randn(8, 16, 20, device="cuda"))
    out = activations_to_audio(maps, "concat")
    assert out.device.type == "cuda"
    ref = netsounds_reference(maps.double().cpu().numpy(), "concat")
    np.testing.assert_allclose(out.cpu().numpy(), ref, atol=5e-5)


def test_maps_needing_grad_or_non_contiguous_are_accepted():
    base = torch.rand(4, 6, 5, requires_grad=True)
    out = activations_to_audio(base * 2, "concat")
    assert out.shape == (4 * 30,) and not out.requires_grad
    permuted = torch.rand(6, 5, 4, dtype=torch.float64).permute(2, 0, 1)  # (4, 6, 5) view
    np.testing.assert_allclose(activations_to_audio(permuted, "none").numpy(),
                               netsounds_reference(permuted.numpy(), "none"), atol=1e-10)
