package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import jdiffusion.pipeline.Presets.Preset;
import jdiffusion.sampling.PredictionType;
import org.junit.jupiter.api.Test;

/** {@link Presets}: what each preset fills in, that explicit values win, and where the Lightning step count comes from. */
class PresetsTest {
    private static final Path BASE = Path.of("/models/sd_xl_base_1.0.safetensors");

    private static GenerateRequest.Builder base() {
        return GenerateRequest.builder(BASE).prompt("a cat");
    }

    @Test
    void lightningFillsEulerSgmUniformCfg1AndTheStepsOfTheUnetName() {
        GenerateRequest r = base().unet(Path.of("/m/sdxl_lightning_8step_unet.safetensors")).build();
        Presets.Applied a = Presets.apply(Preset.LIGHTNING, r);
        assertEquals("euler", a.request().sampler());
        assertEquals("sgm_uniform", a.request().scheduler());
        assertEquals(1.0, a.request().cfg());
        assertEquals(8, a.request().steps());
        assertNull(a.request().width(), "lightning keeps the family's size");
        assertEquals("preset lightning: euler + sgm_uniform, 8 steps (from sdxl_lightning_8step_unet.safetensors), cfg 1",
                a.summary());
    }

    @Test
    void lightningStepsComeFromTheUnetThenTheLorasThenTheCheckpoint() {
        GenerateRequest loras = base().loras(List.of(
                new GenerateRequest.LoraSpec(Path.of("style.safetensors"), 0.7),
                new GenerateRequest.LoraSpec(Path.of("sdxl_lightning_2step_lora.safetensors"), 1.0))).build();
        assertEquals(2, Presets.apply(Preset.LIGHTNING, loras).request().steps());
        GenerateRequest both = loras.toBuilder().unet(Path.of("sdxl_lightning_4step_unet.safetensors")).build();
        assertEquals(Path.of("sdxl_lightning_4step_unet.safetensors"), Presets.stepsFromNames(both).orElseThrow().file());
        GenerateRequest ckpt = GenerateRequest.builder(Path.of("/m/sdxl_lightning_1step_x0.safetensors")).build();
        assertEquals(1, Presets.apply(Preset.LIGHTNING, ckpt).request().steps());
        Presets.Applied none = Presets.apply(Preset.LIGHTNING, base().build());
        assertEquals(Presets.LIGHTNING_DEFAULT_STEPS, none.request().steps());
        assertTrue(none.summary().contains("4 steps (no step count in the file names)"), none.summary());
    }

    @Test
    void stepCountsAreWholeWordsOfTheName() {
        assertEquals(Optional.of(4), Presets.stepsInName("sdxl_lightning_4step_lora.safetensors"));
        assertEquals(Optional.of(8), Presets.stepsInName("Hyper-SDXL-8steps-lora.safetensors"));
        assertEquals(Optional.of(2), Presets.stepsInName("model-2-step.safetensors"));
        assertEquals(Optional.of(1), Presets.stepsInName("sdxl_lightning_1step_unet_x0.safetensors"));
        assertEquals(Optional.empty(), Presets.stepsInName("sdxl_base_1.0.safetensors"));
        assertEquals(Optional.empty(), Presets.stepsInName("stepsister_v2.safetensors"));
        assertEquals(Optional.empty(), Presets.stepsInName("x4stepper.safetensors"));
        assertEquals(Optional.empty(), Presets.stepsInName("model_0step.safetensors"));
    }

    @Test
    void explicitValuesWinAndAreShownAsTheUsers() {
        GenerateRequest r = base().unet(Path.of("sdxl_lightning_8step_unet.safetensors")).steps(6).cfg(2.5)
                .sampler("dpmpp_2m").build();
        Presets.Applied a = Presets.apply(Preset.LIGHTNING, r);
        assertEquals(6, a.request().steps());
        assertEquals(2.5, a.request().cfg());
        assertEquals("dpmpp_2m", a.request().sampler());
        assertEquals("sgm_uniform", a.request().scheduler());
        assertEquals("preset lightning: dpmpp_2m (yours) + sgm_uniform, 6 steps (yours), cfg 2.5 (yours)", a.summary());
        // everything else passes through untouched
        assertEquals(r.unet(), a.request().unet());
        assertEquals(r.prompt(), a.request().prompt());
    }

    @Test
    void lcmIsLcmSgmUniform4StepsCfg1point5() {
        Presets.Applied a = Presets.apply(Preset.LCM, base().loras(List.of(
                new GenerateRequest.LoraSpec(Path.of("lcm-lora-sdxl-8step.safetensors"), 1.0))).build());
        assertEquals("lcm", a.request().sampler());
        assertEquals("sgm_uniform", a.request().scheduler());
        assertEquals(4, a.request().steps(), "lcm does not read step counts from names");
        assertEquals(1.5, a.request().cfg());
        assertEquals("preset lcm: lcm + sgm_uniform, 4 steps, cfg 1.5", a.summary());
    }

    @Test
    void turboIsOneStepCfg1At512UnlessGiven() {
        Presets.Applied a = Presets.apply(Preset.TURBO, base().build());
        assertEquals("euler_ancestral", a.request().sampler());
        assertEquals("sgm_uniform", a.request().scheduler());
        assertEquals(1, a.request().steps());
        assertEquals(1.0, a.request().cfg());
        assertEquals(512, a.request().width());
        assertEquals(512, a.request().height());
        assertEquals("preset turbo: euler_ancestral + sgm_uniform, 1 step, cfg 1, size 512x512", a.summary());
        Presets.Applied wide = Presets.apply(Preset.TURBO, base().width(768).build());
        assertEquals(768, wide.request().width());
        assertEquals(512, wide.request().height());
        Presets.Applied img2img = Presets.apply(Preset.TURBO, base().initImage(Path.of("in.png")).build());
        assertNull(img2img.request().width(), "img2img keeps the init image's size");
    }

    @Test
    void sd35TurboIsFourStepsCfg1() {
        Presets.Applied a = Presets.apply(Preset.parse("sd35-turbo"), base().build());
        assertEquals("euler", a.request().sampler());
        assertEquals("sgm_uniform", a.request().scheduler());
        assertEquals(4, a.request().steps());
        assertEquals(1.0, a.request().cfg());
        assertNull(a.request().width(), "the family's size");
        assertEquals("preset sd35-turbo: euler + sgm_uniform, 4 steps, cfg 1", a.summary());
        assertEquals(8, Presets.apply(Preset.SD35_TURBO, base().steps(8).build()).request().steps());
    }

    @Test
    void presetNames() {
        assertEquals(Preset.TURBO, Preset.parse("Turbo"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Preset.parse("hyper"));
        assertEquals("unknown --preset 'hyper'; valid: lightning, lcm, turbo, sd35-turbo", e.getMessage());
    }

    @Test
    void x0IsReadFromTheUnetNameBeforeTheCheckpoint() {
        Path unet = Path.of("/m/sdxl_lightning_1step_unet_x0.safetensors");
        PredictionHint h = PredictionHint.of(BASE, Map.of(), unet, Map.of()).orElseThrow();
        assertEquals(PredictionType.X0, h.prediction());
        assertEquals("x0 (UNet file name sdxl_lightning_1step_unet_x0.safetensors)", h.describe());
        assertEquals(PredictionType.X0, PredictionHint.of(Path.of("sdxl_lightning_1step_x0.safetensors"), Map.of(),
                null, null).orElseThrow().prediction());
        assertEquals(Optional.empty(), PredictionHint.of(Path.of("sdxl_lightning_4step.safetensors"), Map.of(),
                Path.of("sdxl_lightning_4step_unet.safetensors"), Map.of()));
        // x0 must be a word of its own
        assertEquals(Optional.empty(), PredictionHint.of(Path.of("fox0_model.safetensors"), Map.of(), null, null));
        assertEquals(Optional.empty(), PredictionHint.of(Path.of("model_x00.safetensors"), Map.of(), null, null));
    }

    @Test
    void metadataPredictionTypeIsRead() {
        Map<String, String> x0 = Map.of("modelspec.prediction_type", "x0");
        PredictionHint fromUnet = PredictionHint.of(BASE, Map.of(), Path.of("unet.safetensors"), x0).orElseThrow();
        assertEquals(PredictionType.X0, fromUnet.prediction());
        assertEquals("UNet file metadata modelspec.prediction_type=x0", fromUnet.source());
        assertEquals(PredictionType.V, PredictionHint.of(BASE, Map.of(), Path.of("unet.safetensors"),
                Map.of("modelspec.prediction_type", "v_prediction")).orElseThrow().prediction());
        // the UNet file says nothing: the checkpoint's x0 speaks; its eps / v stay ModelDetector's
        PredictionHint fromCkpt = PredictionHint.of(BASE, Map.of("modelspec.prediction_type", "sample"),
                Path.of("unet.safetensors"), Map.of()).orElseThrow();
        assertEquals(PredictionType.X0, fromCkpt.prediction());
        assertEquals("checkpoint metadata modelspec.prediction_type=sample", fromCkpt.source());
        assertEquals(Optional.empty(), PredictionHint.of(BASE, Map.of("modelspec.prediction_type", "v_prediction"),
                null, null));
        assertEquals(Optional.empty(), PredictionHint.of(BASE, Map.of("modelspec.prediction_type", "flow"), null, null));
    }
}
