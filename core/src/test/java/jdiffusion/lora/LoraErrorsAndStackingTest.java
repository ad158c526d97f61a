package jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import jdiffusion.Golden;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad LoRA input gives one clear line; unused keys are reported; LoRAs stack, switch and come off without reloading. */
class LoraErrorsAndStackingTest {
    private static final String PROJ = "lora_unet_down_blocks_0_attentions_0_proj_out";
    private static final String PROJ_TENSOR = "input_blocks.1.1.proj_out.weight";
    private static SafeTensors sd1File;
    private static SafeTensors sdxlFile;
    private static ModelComponents sd1;
    private static ModelComponents sdxl;

    @TempDir
    Path dir;

    @BeforeAll
    static void openBases() throws Exception {
        sd1File = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"));
        sdxlFile = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"));
        sd1 = GoldenModels.components(sd1File);
        sdxl = GoldenModels.components(sdxlFile);
    }

    @AfterAll
    static void closeBases() {
        sd1File.close();
        sdxlFile.close();
    }

    private static LoraException matchError(Path loraPath, ModelComponents model) {
        return assertThrows(LoraException.class, () -> {
            try (LoraFile f = LoraFile.open(loraPath)) {
                LoraMatch.of(f, model);
            }
        });
    }

    @Test
    void sd1LoraOnSdxlAndTheReverseAreFamilyErrors() {
        LoraException e = matchError(Golden.model("tiny-sd1-lora-kohya.safetensors"), sdxl);
        assertTrue(e.getMessage().contains("tiny-sd1-lora-kohya.safetensors") && e.getMessage().contains("SD1/SD2")
                && e.getMessage().contains("SDXL model"), e.getMessage());
        e = matchError(Golden.model("tiny-sdxl-lora-kohya.safetensors"), sd1);
        assertTrue(e.getMessage().contains("is for SDXL") && e.getMessage().contains("SD1 model"), e.getMessage());
    }

    @Test
    void rankMismatchNamesTheModuleAndBothRanks() throws Exception {
        var b = new TestTensors.Builder(1);
        b.random(PROJ + ".lora_down.weight", 4, 32, 1, 1);
        b.random(PROJ + ".lora_up.weight", 32, 3, 1, 1);
        Path p = b.write(dir.resolve("rank.safetensors"));
        LoraException e = assertThrows(LoraException.class, () -> LoraFile.open(p).close());
        assertTrue(e.getMessage().contains("rank.safetensors") && e.getMessage().contains(PROJ)
                && e.getMessage().contains("rank mismatch") && e.getMessage().contains("rank 3")
                && e.getMessage().contains("rank 4"), e.getMessage());
    }

    @Test
    void doraAndHalfModulesAreClearErrors() throws Exception {
        var b = new TestTensors.Builder(2);
        b.random(PROJ + ".lora_down.weight", 4, 32, 1, 1);
        b.random(PROJ + ".lora_up.weight", 32, 4, 1, 1);
        b.random(PROJ + ".dora_scale", 32, 1, 1, 1);
        Path p = b.write(dir.resolve("dora.safetensors"));
        assertTrue(assertThrows(LoraException.class, () -> LoraFile.open(p).close()).getMessage().contains("DoRA"));
        var h = new TestTensors.Builder(3);
        h.random(PROJ + ".lora_up.weight", 32, 4, 1, 1);
        Path half = h.write(dir.resolve("half.safetensors"));
        assertTrue(assertThrows(LoraException.class, () -> LoraFile.open(half).close()).getMessage().contains("no down"));
    }

    @Test
    void aCheckpointIsNotALora() throws Exception {
        try (SafeTensors lora = SafeTensors.open(Golden.model("tiny-sdxl-lora-kohya.safetensors"))) {
            assertTrue(LoraFile.isLora(lora));
        }
        for (String model : List.of("tiny-sd1-fp16.safetensors", "tiny-sdxl-fp16.safetensors", "tiny-sdxl-unet-diffusers-fp16.safetensors")) {
            try (SafeTensors ckpt = SafeTensors.open(Golden.model(model))) {
                assertTrue(!LoraFile.isLora(ckpt), model);
            }
        }
        LoraException e = assertThrows(LoraException.class, () -> LoraFile.open(Golden.model("tiny-sd1-fp16.safetensors")).close());
        assertTrue(e.getMessage().contains("not a LoRA file"), e.getMessage());
        assertThrows(ModelFormatException.class, () -> LoraFile.open(dir.resolve("missing.safetensors")));
    }

    @Test
    void aLoraThatMatchesNothingIsAnError() throws Exception {
        var b = new TestTensors.Builder(4);
        b.random("lora_unet_no_such_layer.lora_down.weight", 4, 8);
        b.random("lora_unet_no_such_layer.lora_up.weight", 8, 4);
        LoraException e = matchError(b.write(dir.resolve("nothing.safetensors")), sd1);
        assertTrue(e.getMessage().contains("none of its 1 modules") && e.getMessage().contains("lora_unet_no_such_layer"),
                e.getMessage());
    }

    @Test
    void unusedKeysAreCountedListedAndTheRestIsApplied() throws Exception {
        var b = new TestTensors.Builder(5);
        b.random(PROJ + ".lora_down.weight", 4, 32, 1, 1);
        b.random(PROJ + ".lora_up.weight", 32, 4, 1, 1);
        b.scalar(PROJ + ".alpha", 4f);
        b.random("lora_unet_no_such_layer.lora_down.weight", 4, 8);
        b.random("lora_unet_no_such_layer.lora_up.weight", 8, 4);
        b.random("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", 4, 16, 1, 1); // wrong in-channels
        b.random("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", 32, 4, 1, 1);
        b.random("something.else", 3);
        try (LoraFile f = LoraFile.open(b.write(dir.resolve("partial.safetensors")))) {
            LoraReport r = LoraMatch.of(f, sd1).report();
            assertEquals(1, r.modulesAppliedTotal());
            assertEquals(5, r.unusedKeys().size());
            assertEquals(8, r.keys());
            String w = r.warning().orElseThrow();
            assertTrue(w.contains("5 of 8 keys") && w.contains("something.else")
                    && w.contains("lora_unet_no_such_layer.lora_down.weight"), w);
            assertTrue(r.problems().stream().anyMatch(p -> p.contains("proj_in") && p.contains("[32, 32, 1, 1]")), r.problems().toString());
        }
    }

    @Test
    void lorasStackSwitchAndComeOffOverTheSameBase() throws Exception {
        float[] base = sd1.unet().get(PROJ_TENSOR);
        var a = new TestTensors.Builder(6);
        float[] ad = a.random(PROJ + ".lora_down.weight", 2, 32, 1, 1);
        float[] au = a.random(PROJ + ".lora_up.weight", 32, 2, 1, 1);
        float[] ated = a.random("lora_te_text_model_encoder_layers_0_mlp_fc2.lora_down.weight", 2, 256);
        float[] ateu = a.random("lora_te_text_model_encoder_layers_0_mlp_fc2.lora_up.weight", 64, 2);
        var b = new TestTensors.Builder(7);
        float[] bd = b.random(PROJ + ".lora_down.weight", 4, 32, 1, 1);
        float[] bu = b.random(PROJ + ".lora_up.weight", 32, 4, 1, 1);
        b.scalar(PROJ + ".alpha", 1f);
        Path pa = a.write(dir.resolve("a.safetensors"));
        Path pb = b.write(dir.resolve("b.safetensors"));
        double[] da = TestTensors.matmul(au, ad, 32, 2, 32);
        double[] db = TestTensors.matmul(bu, bd, 32, 4, 32);
        double[] both = new double[da.length];
        for (int i = 0; i < both.length; i++) {
            both[i] = 0.7 * da[i] - 0.3 * 0.25 * db[i];
        }
        try (LoraStack stack = LoraStack.load(sd1, List.of(LoraSpec.parse(pa + ":0.7:0.2"), LoraSpec.parse(pb + ":-0.3")))) {
            assertTrue(TestTensors.misfit(stack.weights().unet().get(PROJ_TENSOR), base, 1, both) <= 1);
            String fc2 = "text_model.encoder.layers.0.mlp.fc2.weight";
            assertTrue(TestTensors.misfit(stack.weights().te1().get(fc2), sd1.te1().get(fc2), 0.2,
                    TestTensors.matmul(ateu, ated, 64, 2, 256)) <= 1, "te1 gets the clip strength");
            assertEquals(List.of(), stack.warnings());
        }
        try (LoraStack switched = LoraStack.load(sd1, List.of(LoraSpec.parse(pb.toString())))) {
            assertTrue(TestTensors.misfit(switched.weights().unet().get(PROJ_TENSOR), base, 0.25, db) <= 1);
            assertEquals(sd1.te1(), switched.weights().te1(), "a UNet-only LoRA leaves the text encoder as it is");
        }
        try (LoraFile fb = LoraFile.open(pb)) {
            LoraWeights off = LoraWeights.over(sd1.unet(), LoraMatch.of(fb, sd1).patches(Component.UNET), 0f);
            assertArrayEquals(base, off.get(PROJ_TENSOR));
        }
        assertArrayEquals(base, sd1.unet().get(PROJ_TENSOR), "the base weights are never written");
    }

    @Test
    void loraSpecParsesFileStrengthAndClipStrength() {
        assertEquals(new LoraSpec(Path.of("a.safetensors"), 1f, 1f), LoraSpec.parse("a.safetensors"));
        assertEquals(new LoraSpec(Path.of("a.safetensors"), 0.8f, 0.8f), LoraSpec.parse("a.safetensors:0.8"));
        assertEquals(new LoraSpec(Path.of("/x/a.safetensors"), 0.8f, 0.5f), LoraSpec.parse("/x/a.safetensors:0.8:0.5"));
        assertEquals(new LoraSpec(Path.of("a.safetensors"), -1f, 1e-3f), LoraSpec.parse("a.safetensors:-1:1e-3"));
        assertEquals(new LoraSpec(Path.of("dir:v2/a.safetensors"), 1f, 1f), LoraSpec.parse("dir:v2/a.safetensors"));
        assertThrows(IllegalArgumentException.class, () -> LoraSpec.parse(""));
    }
}
