package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.model.Conditioning;
import jdiffusion.model.TextConditioner;
import jdiffusion.text.Embeddings;
import jdiffusion.workflow.Values.Cond;
import jdiffusion.workflow.WorkflowEngine.ExecutionResult;
import jdiffusion.workflow.WorkflowEngine.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** CLIPTextEncode reads {@code embedding:name} from the base dir's models/embeddings (an A1111 .pt here). */
class EmbeddingWorkflowTest {
    @TempDir
    Path base;

    @Test
    void clipTextEncodeSplicesEmbeddingsFromTheBaseDir() throws Exception {
        Workflows.place(base, "checkpoints", "tiny-sd1-fp16.safetensors");
        Path emb = base.resolve("models/embeddings");
        Files.createDirectories(emb);
        Files.copy(Golden.model("embeddings/tinyemb.pt"), emb.resolve("tinyemb.pt"));
        String prompt = "a photo of embedding:tinyemb wearing a hat";
        Workflows.Builder b = new Workflows.Builder()
                .node("4", "CheckpointLoaderSimple", "ckpt_name", "tiny-sd1-fp16.safetensors")
                .node("6", "CLIPTextEncode", "text", prompt, "clip", link("4", 1))
                .node("7", "CLIPTextEncode", "text", "", "clip", link("4", 1))
                .node("5", "EmptyLatentImage", "width", 64, "height", 64, "batch_size", 1)
                .node("3", "KSampler", "model", link("4", 0), "seed", 1L, "steps", 1, "cfg", 1.0, "sampler_name", "euler",
                        "scheduler", "normal", "positive", link("6", 0), "negative", link("7", 0), "latent_image", link("5", 0),
                        "denoise", 1.0)
                .node("8", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                .node("9", "PreviewImage", "images", link("8", 0));
        float[] fromWorkflow;
        try (WorkflowEngine engine = new WorkflowEngine(ModelPaths.of(base), 1L << 30)) {
            ExecutionResult r = engine.execute(b.build(), null, null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, r.status(), r.message());
            fromWorkflow = ((Cond) r.values().get("6").getFirst()).text().context();
        }
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            TextConditioner tc = TextConditioner.load(f);
            Conditioning expected = tc.withEmbeddings(Embeddings.folder(Golden.model("embeddings"))).encode(prompt);
            assertArrayEquals(expected.context(), fromWorkflow);
            assertFalse(Arrays.equals(tc.encode(prompt).context(), fromWorkflow), "the embedding changed the conditioning");
        }
    }
}
