package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Fuzz target (Jazzer) for the workflow / prompt JSON validator: any text either fails to parse with a
 * {@link WorkflowException} or validates to a result (ComfyUI's error and node_errors); a prompt that validates has an
 * execution order. Never another exception, a stack overflow or a hang. Seeds: {@code
 * PromptValidatorFuzzTestInputs/validate/}.
 */
class PromptValidatorFuzzTest {
    private static final ModelPaths PATHS = paths();

    private static ModelPaths paths() {
        try {
            Path base = Files.createTempDirectory("jdiffusion-fuzz");
            Files.createDirectories(base.resolve("models/checkpoints"));
            Files.createDirectories(base.resolve("models/loras"));
            Files.createDirectories(base.resolve("input"));
            Files.write(base.resolve("models/checkpoints/m.safetensors"), new byte[0]);
            Files.write(base.resolve("models/loras/l.safetensors"), new byte[0]);
            base.toFile().deleteOnExit();
            return ModelPaths.of(base);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @FuzzTest(maxDuration = "5s")
    @DictionaryEntries({"\"class_type\"", "\"inputs\"", "\"CheckpointLoaderSimple\"", "\"KSampler\"",
            "\"CLIPTextEncode\"", "\"EmptyLatentImage\"", "\"VAEDecode\"", "\"SaveImage\"", "\"LoraLoader\"",
            "\"ckpt_name\"", "\"m.safetensors\"", "\"samples\"", "\"images\"", "\"seed\"", "\"steps\"", "\"width\"",
            "[\"1\",0]", "\"prompt\"", "\"model\"", "\"clip\"", "\"vae\"", "\"latent_image\""})
    void validate(byte[] input) {
        Prompt prompt;
        try {
            prompt = Prompt.parse(new String(input, StandardCharsets.UTF_8));
        } catch (WorkflowException expected) {
            assertTrue(!expected.getMessage().contains("\n"), expected.getMessage());
            return;
        }
        PromptValidator.Result r = PromptValidator.validate(prompt, PATHS);
        assertNotNull(r.toJson());
        assertNotNull(r.describe());
        if (r.ok()) {
            List<String> order = WorkflowEngine.executionOrder(prompt, r.goodOutputs());
            assertTrue(order.containsAll(r.goodOutputs()), order.toString());
        }
    }
}
