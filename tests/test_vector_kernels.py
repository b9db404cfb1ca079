"""The vector kernels under the crossover and compressors: polynomial exp/log10, the sample
loop (sequential and two-thread pipeline) and the wavefront layout."""

import numpy as np
import pytest
from scipy.signal import lfilter

from clarity.enhancer.multiband_compressor import Crossover, MultibandCompressor
from clarity.enhancer.multiband_compressor.compressor_qmul import parameter_vectors
from clarity.enhancer.multiband_compressor.multiband_compressor import multiband_loop
from clarity.enhancer.multiband_compressor.wavefront import Stage, Wavefront
from clarity.utils import vector_ir
from clarity.utils.sample_loop import (
    PIPELINE_BLOCK,
    SampleLoop,
    StepContext,
)
from clarity.utils.vector_ir import INT32, INT64, LANES


def lanewise_loop(function) -> SampleLoop:
    """Loop applying `function` (builder, vector) -> vector to the 8 rows of a block."""

    def phase(context: StepContext) -> None:
        builder = context.builder
        vector = vector_ir.constant(0.0)
        for row in range(LANES):
            vector = builder.insert_element(vector, context.signal_sample(INT64(row)), INT32(row))
        result = function(builder, vector)
        for row in range(LANES):
            context.store(context.out, INT64(row), 0, vector_ir.lane(builder, result, row))

    return SampleLoop([[phase]], delay=0, n_slots=0)


def apply(loop: SampleLoop, values: np.ndarray) -> np.ndarray:
    block = values.reshape(LANES, -1)
    out = np.empty_like(block)
    loop(block, None, out, None, 0)
    return out.ravel()


def test_exp_within_two_ulp_of_numpy():
    x = np.concatenate([np.linspace(-40.0, 10.0, 79_992), [0.0, -0.0, 1e-300, -1e-17] * 2])
    result = apply(lanewise_loop(vector_ir.exp), x)
    expected = np.exp(x)
    assert np.max(np.abs(result - expected) / np.spacing(expected)) <= 2


def test_log10_within_two_ulp_of_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [10.0 ** rng.uniform(-12, 2, 79_984), [1.0, 2.0, 0.5, np.sqrt(2), 1e-12, 10.0, 0.1, 3.0]]
    )
    result = apply(lanewise_loop(vector_ir.log10), x)
    expected = np.log10(x)
    error_ulp = np.abs(result - expected) / np.spacing(np.maximum(np.abs(expected), 1e-300))
    assert np.max(np.abs(result[expected == 0])) == 0.0
    assert np.max(np.abs(result - expected)) <= 4e-16 * np.max(np.abs(expected))
    assert np.median(error_ulp) <= 1


@pytest.mark.parametrize("return_bands", [False, True])
def test_pipelined_loop_equals_sequential(return_bands):
    # several pipeline blocks and a partial last one
    n_samples = 2 * PIPELINE_BLOCK + 1234
    signal = 0.3 * np.random.default_rng(5).standard_normal((1, n_samples))
    mbc = MultibandCompressor([500.0, 2000.0, 6000.0], 44100)
    mbc.set_compressors(threshold=-35, ratio=[1.5, 2.0, 3.0, 4.0], attack=5, release=80)
    loop = multiband_loop(mbc.crossover.wavefront, return_bands)
    parameters = parameter_vectors(mbc.compressor)
    results = []
    for threads in (1, 2):
        out = np.full((1, n_samples), np.nan)
        bands = np.full((4, 1, n_samples) if return_bands else (1, 1, 1), np.nan)
        loop(signal, parameters, out, bands, 0, threads=threads)
        results.append((out, bands))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert np.all(np.isfinite(results[0][0]))


def test_wavefront_layout_of_a_chain():
    # x -> biquad 0 -> biquad 1; band 0 = stage 1, band 1 = stage 0 - stage 1
    biquad = Stage((0.2, 0.4, 0.2), (1.0, -0.5, 0.1), -1)
    stages = (biquad, Stage(biquad.b, biquad.a, 0))
    wavefront = Wavefront.from_network(stages, ((1, -1), (0, 1)))
    assert wavefront.band_lag == (1, 1)  # stage 1 runs one step behind stage 0
    assert wavefront.plus[1].delay == 1  # so stage 0's output is used one step later
    assert wavefront.minus[1].delay == 0
    assert len(wavefront.chunks) == 1
    assert wavefront.chunks[0].sources[:2] == (None, (0, 0))


@pytest.mark.parametrize("n_bands", [9, 17])
def test_more_bands_than_vector_lanes(n_bands):
    # bands beyond eight go to further band vectors; each must still be its own compressor
    frequencies = list(np.geomspace(100.0, 12000.0, n_bands - 1))
    signal = 0.5 * np.random.default_rng(9).standard_normal((2, 3000))
    mbc = MultibandCompressor(frequencies, 44100)
    mbc.set_compressors(
        threshold=list(np.linspace(-45, -15, n_bands)),
        ratio=list(np.linspace(1.0, 5.0, n_bands)),
        makeup_gain=list(np.linspace(0, 12, n_bands)),
    )
    output, compressed = mbc(signal, return_bands=True)
    bands = Crossover(frequencies, 44100)(signal)
    expected = np.array([c(band) for c, band in zip(mbc.compressor, bands, strict=True)])
    np.testing.assert_array_equal(compressed, expected)
    np.testing.assert_array_equal(output, expected.sum(axis=0))
    scale = np.max(np.abs(signal))
    lfilter_cascade = [signal] * n_bands
    for band in range(n_bands):
        for b, a in mbc.crossover.band_filters(band):
            lfilter_cascade[band] = lfilter(b, a, lfilter_cascade[band], axis=-1)
    assert np.max(np.abs(bands - np.array(lfilter_cascade))) <= 1e-10 * scale


def test_pipeline_works_in_a_forked_child():
    # the parent starts the pipeline's worker thread; a forked child must not wait on it
    multiprocessing = pytest.importorskip("multiprocessing")
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    signal = 0.3 * np.random.default_rng(6).standard_normal((1, 2 * PIPELINE_BLOCK))
    mbc = MultibandCompressor([1000.0], 44100)
    mbc.set_compressors(threshold=-30, ratio=2)
    loop = multiband_loop(mbc.crossover.wavefront, False)
    parameters = parameter_vectors(mbc.compressor)
    expected = np.empty_like(signal)
    loop(signal, parameters, expected, None, 0, threads=2)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_compress_in_child, (signal, mbc)).get(timeout=120)
    np.testing.assert_array_equal(result, expected)


def _compress_in_child(signal: np.ndarray, mbc: MultibandCompressor) -> np.ndarray:
    loop = multiband_loop(mbc.crossover.wavefront, False)
    out = np.empty_like(signal)
    loop(signal, parameter_vectors(mbc.compressor), out, None, 0, threads=2)
    return out


def test_exp_saturates_instead_of_wrapping():
    x = np.array([-1e4, -800.0, -708.0, 709.0, 800.0, 1e4, 0.0, 1.0])
    result = apply(lanewise_loop(vector_ir.exp), x)
    assert np.all(np.isfinite(result)) and np.all(result > 0)
    np.testing.assert_allclose(result[:3], np.exp(-708.0), rtol=1e-15)
    np.testing.assert_allclose(result[3:6], np.exp(709.0), rtol=1e-15)
