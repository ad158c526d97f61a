package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jdiffusion.model.Family;
import jdiffusion.model.LatentFormat;
import org.junit.jupiter.api.Test;

/** ComfyUI's CONST model type and ModelSamplingDiscreteFlow, checked against their formulas. */
class FlowSemanticsTest {

    @Test
    void constNoiseScalingAndItsInverse() {
        float[] noise = {1f, -2f, 0.5f};
        float[] latent = {0.25f, 4f, -1f};
        float[] x = PredictionType.FLOW.noiseScaling(0.6, noise, latent, false);
        for (int i = 0; i < x.length; i++) {
            assertEquals(0.6f * noise[i] + 0.4f * latent[i], x[i], 1e-6f);
        }
        // at sigma 1 the latent drops out, whatever max_denoise says
        assertArrayEquals(noise, PredictionType.FLOW.noiseScaling(1.0, noise, latent, true));
        float[] back = PredictionType.FLOW.inverseNoiseScaling(0.2, new float[] {0.8f, 1.6f});
        assertEquals(1.0f, back[0], 1e-6f);
        assertEquals(2.0f, back[1], 1e-6f);
        // velocity: denoised = x - v * sigma, the input unscaled
        float[] d = PredictionType.FLOW.denoised(new float[] {1f}, new float[] {0.5f}, 0.4);
        assertEquals(0.8f, d[0], 1e-6f);
        assertArrayEquals(new float[] {3f}, PredictionType.FLOW.calculateInput(new float[] {3f}, 0.9));
    }

    @Test
    void flowModelSampling() {
        ModelSamplingDiscrete ms = ModelSamplingDiscrete.flow(3.0);
        assertTrue(ms.isFlow());
        assertEquals(1.0, ms.sigmaMax(), 0);
        // sigma(t) = 3t / (1 + 2t)
        assertEquals(3 * 0.5 / (1 + 2 * 0.5), ms.sigma(500), 1e-6);
        assertEquals(0.75f * 1000f, ms.networkTimestep(0.75), 0);
        assertEquals(1.0, ms.percentToSigma(0), 0);
        assertEquals(0.0, ms.percentToSigma(1), 0);
        assertEquals(3 * 0.75 / (1 + 2 * 0.75), ms.percentToSigma(0.25), 1e-12);
        assertEquals(0.001, ModelSamplingDiscrete.flow(1.0).sigmaMin(), 1e-9);
        assertThrows(IllegalArgumentException.class, () -> ModelSamplingDiscrete.flow(0));
        assertThrows(IllegalArgumentException.class, () -> FlowMatchEulerScheduler.schedule(0, 3.0));
    }

    @Test
    void sd3LatentFormatRoundTrips() {
        LatentFormat f = Family.SD3.latentFormat();
        float[] vae = {0.0609f, 1.0f, -2.5f};
        float[] model = f.toModel(vae);
        assertEquals(0f, model[0], 1e-7f);
        assertEquals((1.0f - 0.0609f) * 1.5305f, model[1], 1e-6f);
        float[] again = f.toVae(model);
        for (int i = 0; i < vae.length; i++) {
            assertEquals(vae[i], again[i], 1e-6f);
        }
        // KSampler's shifted process_latent_in leaves an empty latent alone (EmptySD3LatentImage)
        assertArrayEquals(new float[3], KSampler.processLatentIn(new float[3], 1.5305, 0.0609));
        assertArrayEquals(model, KSampler.processLatentIn(vae, 1.5305, 0.0609));
    }
}
