package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.tensor.Finite;
import jdiffusion.text.PromptParser;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 16 item 6: NaN/Inf weights in a checkpoint's text encoder, UNet or VAE fail the generation with an error
 * naming the stage (instead of an all-black image), on both weight paths (the fp16 file and its fp32 twin); prompt
 * weights that are not finite are refused when the prompt is parsed.
 */
class NonFiniteStagesTest {
    private static final String SD1 = "tiny-sd1-fp16.safetensors";

    @TempDir
    static Path dir;

    /** A copy of the checkpoint with one tensor's values replaced by value, stored as dtype. */
    static Path poisoned(Path source, String tensor, float value, DType dtype, Path target) throws Exception {
        try (SafeTensors src = SafeTensors.open(source)) {
            SafeTensorsWriter w = SafeTensorsWriter.to(target).overwrite(true).metadata(src.metadata());
            for (String n : src.names()) {
                if (n.equals(tensor)) {
                    float[] v = new float[(int) src.info(n).numel()];
                    Arrays.fill(v, value);
                    w.add(n, dtype, src.info(n).shape(), v);
                } else {
                    w.addFrom(src, n, n, dtype);
                }
            }
            w.write();
        }
        return target;
    }

    record Case(String stage, String tensor, float value) {
    }

    private static final List<Case> CASES = List.of(
            new Case("text encoder", "cond_stage_model.transformer.text_model.final_layer_norm.bias", Float.NaN),
            new Case("UNet at sampling step 1", "model.diffusion_model.out.2.bias", Float.POSITIVE_INFINITY),
            new Case("VAE decoder", "first_stage_model.decoder.conv_out.bias", Float.NaN));

    @TestFactory
    Stream<DynamicTest> poisonedStageIsNamed() {
        return Stream.of(DType.F16, DType.F32).flatMap(dtype -> CASES.stream().map(c -> DynamicTest.dynamicTest(
                c.stage() + " " + dtype, () -> {
                    Path file = poisoned(Golden.model(SD1), c.tensor(), c.value(), dtype,
                            dir.resolve("poison-" + c.tensor() + "-" + dtype + ".safetensors"));
                    GenerateRequest r = GenerateRequest.builder(file).prompt("a red apple").size(64, 64).steps(2)
                            .cfg(4.0).seed(1L).build();
                    RuntimeException e = assertThrows(RuntimeException.class,
                            () -> Pipeline.generate(r, ProgressListener.NONE, CancellationToken.none()));
                    assertTrue(e instanceof Finite.NonFiniteException, e.toString());
                    assertTrue(e.getMessage().startsWith(c.stage() + " "), e.getMessage());
                    assertTrue(!e.getMessage().contains("\n"), "one line");
                })));
    }

    @Test
    void cleanModelPasses() {
        GenerateResult r = Pipeline.generate(GenerateRequest.builder(Golden.model(SD1)).prompt("a red apple")
                .size(64, 64).steps(1).seed(1L).build(), ProgressListener.NONE, CancellationToken.none());
        assertEquals(-1, Finite.firstNonFinite(r.latent()));
    }

    @Test
    void firstNonFiniteFindsEachKind() {
        float[] v = new float[5000];
        assertEquals(-1, Finite.firstNonFinite(v));
        v[4321] = Float.NEGATIVE_INFINITY;
        assertEquals(4321, Finite.firstNonFinite(v));
        v[17] = Float.NaN;
        assertEquals(17, Finite.firstNonFinite(v));
        v[17] = Float.MAX_VALUE; // large but finite
        assertEquals(4321, Finite.firstNonFinite(v));
    }

    @Test
    void nonFinitePromptWeightsAreRefusedAtParseTime() {
        for (String p : List.of("(cat:1e400)", "(dog:NaN)", "(dog:nan)", "(x:inf)", "(x:-Infinity)", "(x:1e39)",
                "(((x)):3e38)")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PromptParser.parse(p),
                    p);
            assertTrue(e.getMessage().contains("not a finite number"), e.getMessage());
        }
        assertEquals(1e30, PromptParser.parse("(cat:1e30)").getFirst().weight());
        GenerateRequest r = GenerateRequest.builder(Golden.model(SD1)).prompt("a (dog:NaN)").size(64, 64).steps(1)
                .build();
        RuntimeException e = assertThrows(RuntimeException.class,
                () -> Pipeline.generate(r, ProgressListener.NONE, CancellationToken.none()));
        assertTrue(e.getMessage().contains("prompt weight"), e.getMessage());
    }
}
