package jdiffusion.pipeline;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The textual-inversion pipeline cases ({@code pipe_*} with {@code params.embedding}, in the golden's
 * {@code embeddings/} folder): the full diffusers-case check of {@link PipelineGoldenTest} (first UNet call, every
 * step's latents, final latents, image, PNG) with the prompt in ComfyUI's {@code embedding:name} form and the
 * embedding read from its folder, fp16 and fp32 weights.
 */
class EmbeddingPipelineGoldenTest {
    @org.junit.jupiter.api.AfterAll
    static void cleanUp() throws java.io.IOException {
        PipelineGoldenTest.cleanUp(); // the fp32 copies it wrote for this class
    }
    @TestFactory
    Stream<DynamicTest> embeddingPipelineCases() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifestsIn("embeddings", "pipe_")) {
            if (!PipeGolden.json(manifest).path("params").has("embedding")) {
                continue;
            }
            for (String dtype : List.of("fp16", "fp32")) {
                tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest) + " [" + dtype + "]",
                        () -> PipelineGoldenTest.diffusersCase(manifest, dtype)));
            }
        }
        return tests.stream();
    }
}
