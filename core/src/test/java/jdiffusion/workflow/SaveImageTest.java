package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import jdiffusion.Golden;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.workflow.WorkflowEngine.ExecutionResult;
import jdiffusion.workflow.WorkflowEngine.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** SaveImage's ComfyUI naming: after the highest counter, never overwriting, no way out of the output folder. */
class SaveImageTest {
    @TempDir
    Path base;

    private static Prompt save(String prefix) {
        return new Workflows.Builder()
                .node("1", "LoadImage", "image", "in.png")
                .node("2", "SaveImage", "images", link("1", 0), "filename_prefix", prefix)
                .build();
    }

    @Test
    void countersContinueAfterTheHighestAndNeverOverwrite() throws IOException {
        ModelPaths paths = ModelPaths.of(base);
        Files.copy(Golden.dir().resolve("pipe_sd1_img2img_euler.input.png"), paths.inputDir().resolve("in.png"));
        Files.createDirectories(paths.outputDir().resolve("shots"));
        Files.writeString(paths.outputDir().resolve("shots/cat_00007_.png"), "keep");
        Files.writeString(paths.outputDir().resolve("shots/cat_00012_.txt"), "keep");
        Files.writeString(paths.outputDir().resolve("shots/dog_00099_.png"), "keep");
        try (WorkflowEngine engine = new WorkflowEngine(paths, 1L << 20)) {
            ExecutionResult r = engine.execute(save("shots/cat"), null, null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, r.status(), r.message());
            @SuppressWarnings("unchecked")
            var image = (java.util.Map<String, Object>) ((List<Object>) r.outputs().get("2").get("images")).get(0);
            assertEquals("cat_00013_.png", image.get("filename"));
            assertEquals("shots", image.get("subfolder"));
            assertEquals("output", image.get("type"));
            assertEquals("keep", Files.readString(paths.outputDir().resolve("shots/cat_00007_.png")));
            PngImage saved = PngReader.read(paths.outputDir().resolve("shots/cat_00013_.png"));
            PngImage in = PngReader.read(paths.inputDir().resolve("in.png"));
            int worst = 0;
            for (int i = 0; i < in.rgb().length; i++) {
                worst = Math.max(worst, Math.abs((in.rgb()[i] & 0xFF) - (saved.rgb()[i] & 0xFF)));
            }
            // b / 255 * 255 in float32 may land just under b, and SaveImage truncates, as ComfyUI's numpy does
            assertTrue(worst <= 1, "8-bit round trip within 1 level, got " + worst);

            ExecutionResult out = engine.execute(save("../escape"), null, null, ExecutionListener.NONE);
            assertEquals(Status.ERROR, out.status());
            assertTrue(out.message().contains(".."), out.message());
            ExecutionResult abs = engine.execute(save("/tmp/escape"), null, null, ExecutionListener.NONE);
            assertEquals(Status.ERROR, abs.status());
            assertTrue(Files.notExists(base.resolve("escape_00001_.png")));
        }
    }
}
