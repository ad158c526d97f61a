package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.math.BigInteger;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 16 items 4 and 10: long chains are validated and executed without recursion (no StackOverflowError),
 * graphs past the size and depth bounds get ComfyUI-style errors, and a link slot past int range is refused.
 */
class DeepWorkflowTest {
    private static final String SD1 = "tiny-sd1-fp16.safetensors";

    @TempDir
    Path base;

    /** EmptyLatentImage -> LatentUpscale x n -> VAEDecode -> SaveImage. */
    private static Prompt chain(int n) {
        Workflows.Builder b = new Workflows.Builder();
        b.node("ckpt", "CheckpointLoaderSimple", "ckpt_name", SD1);
        b.node("l0", "EmptyLatentImage", "width", 64, "height", 64, "batch_size", 1);
        for (int i = 1; i <= n; i++) {
            b.node("l" + i, "LatentUpscale", "samples", Workflows.link("l" + (i - 1), 0), "upscale_method",
                    "nearest-exact", "width", 64, "height", 64, "crop", "disabled");
        }
        b.node("dec", "VAEDecode", "samples", Workflows.link("l" + n, 0), "vae", Workflows.link("ckpt", 2));
        b.node("save", "SaveImage", "images", Workflows.link("dec", 0), "filename_prefix", "deep");
        return b.build();
    }

    @Test
    void tooManyNodesIsAPromptError() throws Exception {
        Workflows.place(base, "checkpoints", SD1);
        PromptValidator.Result r = PromptValidator.validate(chain(20_000), ModelPaths.of(base));
        assertFalse(r.ok());
        assertEquals("prompt_too_large", r.error().path("type").asText());
    }

    @Test
    void tooDeepIsANodeError() throws Exception {
        Workflows.place(base, "checkpoints", SD1);
        PromptValidator.Result r = PromptValidator.validate(chain(PromptValidator.MAX_DEPTH + 500),
                ModelPaths.of(base));
        assertFalse(r.ok());
        assertEquals("prompt_outputs_failed_validation", r.error().path("type").asText());
        boolean deep = false;
        for (var e : r.nodeErrors().properties()) {
            for (JsonNode err : e.getValue().path("errors")) {
                deep |= err.path("type").asText().equals("prompt_too_deep");
            }
        }
        assertTrue(deep, r.toJson().toString().substring(0, 500));
    }

    @Test
    void aLongChainValidatesAndRunsWithoutRecursion() throws Exception {
        Workflows.place(base, "checkpoints", SD1);
        // deeper than the old recursion survived (600 nodes overflowed a server thread's stack)
        Prompt p = chain(1_500);
        try (WorkflowEngine engine = new WorkflowEngine(ModelPaths.of(base), 1L << 30)) {
            // on a thread with a small stack: nothing may recurse once per node
            Object[] out = new Object[2];
            Thread t = Thread.ofPlatform().stackSize(512 << 10).start(() -> {
                try {
                    out[0] = engine.validate(p);
                    out[1] = engine.execute(p, "deep", null, ExecutionListener.NONE);
                } catch (Throwable e) {
                    out[0] = e;
                }
            });
            t.join();
            assertTrue(out[0] instanceof PromptValidator.Result v && v.ok(), String.valueOf(out[0]));
            WorkflowEngine.ExecutionResult r = (WorkflowEngine.ExecutionResult) out[1];
            assertEquals(WorkflowEngine.Status.SUCCESS, r.status(), r.message());
            assertEquals(1_504, r.executed().size());
        }
    }

    @Test
    void executionOrderOfAHugeChainIsIterative() {
        Prompt p = chain(50_000);
        List<String> order = WorkflowEngine.executionOrder(p, List.of("save"));
        assertEquals(50_004, order.size());
        assertEquals("l0", order.getFirst());
        assertTrue(order.indexOf("ckpt") > order.indexOf("l50000") && order.indexOf("ckpt") < order.indexOf("dec"));
        assertEquals("save", order.getLast());
    }

    @Test
    void linkSlotPastIntRangeIsRefused() throws Exception {
        Workflows.place(base, "checkpoints", SD1);
        Workflows.Builder b = new Workflows.Builder();
        b.node("ckpt", "CheckpointLoaderSimple", "ckpt_name", SD1);
        b.node("l0", "EmptyLatentImage", "width", 64, "height", 64, "batch_size", 1);
        b.node("dec", "VAEDecode", "samples", Workflows.link("l0", 0), "vae", Workflows.link("ckpt", 2));
        b.node("save", "SaveImage", "images", Workflows.link("dec", 0), "filename_prefix", "x");
        b.root.with("dec").with("inputs").putArray("samples").add("l0").add(BigInteger.TWO.pow(70));
        PromptValidator.Result r = PromptValidator.validate(b.build(), ModelPaths.of(base));
        assertFalse(r.ok());
        JsonNode err = r.nodeErrors().path("dec").path("errors").get(0);
        assertEquals("bad_linked_input", err.path("type").asText());
        assertTrue(err.path("message").asText().contains("out of range"), err.toString());
    }
}
