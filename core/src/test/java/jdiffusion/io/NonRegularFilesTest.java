package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import jdiffusion.Golden;
import jdiffusion.lora.LoraFile;
import jdiffusion.pipeline.CancellationToken;
import jdiffusion.pipeline.GenerateException;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.Pipeline;
import jdiffusion.pipeline.ProgressListener;
import jdiffusion.workflow.Prompt;
import jdiffusion.workflow.WorkflowException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 16 item 2: a FIFO (made with mkfifo), a device or a directory given as a model, LoRA, VAE, init image or
 * workflow is refused with one line before anything opens it; opening a FIFO for reading would block forever.
 */
class NonRegularFilesTest {
    private static final Duration QUICK = Duration.ofSeconds(10);

    @TempDir
    static Path dir;
    static Path fifo;

    @BeforeAll
    static void makeFifo() throws Exception {
        fifo = dir.resolve("model.safetensors");
        Process p = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        assertEquals(0, p.waitFor());
        assertTrue(Files.exists(fifo) && !Files.isRegularFile(fifo));
    }

    @Test
    void problemNamesTheKind() {
        assertTrue(RegularFiles.problem(fifo).contains("FIFO"), RegularFiles.problem(fifo));
        assertTrue(RegularFiles.problem(Path.of("/dev/null")).contains("character device"));
        assertTrue(RegularFiles.problem(dir).contains("directory"));
        assertTrue(RegularFiles.problem(dir.resolve("missing")).contains("not found"));
        assertNull(RegularFiles.problem(Golden.model("tiny-sd1-fp16.safetensors")));
    }

    @Test
    void safetensorsLoraAndPngRefuseAFifo() {
        assertTimeoutPreemptively(QUICK, () -> {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafeTensors.open(fifo));
            assertEquals(fifo + ": is a FIFO (named pipe), not a regular file", e.getMessage());
            assertThrows(ModelFormatException.class, () -> LoraFile.open(fifo));
            IOException png = assertThrows(IOException.class, () -> PngReader.read(fifo));
            assertTrue(png.getMessage().contains("FIFO"), png.getMessage());
            assertThrows(IOException.class, () -> PngReader.text(fifo));
            WorkflowException w = assertThrows(WorkflowException.class, () -> Prompt.read(fifo));
            assertTrue(w.getMessage().contains("FIFO"), w.getMessage());
            assertThrows(ModelFormatException.class, () -> SafeTensors.open(Path.of("/dev/zero")));
        });
    }

    @Test
    void generateRefusesAFifoAsModelVaeLoraOrInitImage() {
        Path good = Golden.model("tiny-sd1-fp16.safetensors");
        List<GenerateRequest> requests = List.of(
                GenerateRequest.builder(fifo).size(64, 64).steps(1).build(),
                GenerateRequest.builder(good).vae(fifo).size(64, 64).steps(1).build(),
                GenerateRequest.builder(good).loras(List.of(new GenerateRequest.LoraSpec(fifo, 1, 1))).size(64, 64)
                        .steps(1).build(),
                GenerateRequest.builder(good).initImage(fifo).denoise(0.5).steps(1).build());
        assertTimeoutPreemptively(QUICK, () -> {
            for (GenerateRequest r : requests) {
                GenerateException e = assertThrows(GenerateException.class,
                        () -> Pipeline.generate(r, ProgressListener.NONE, CancellationToken.none()));
                assertTrue(e.getMessage().contains("FIFO (named pipe)"), e.getMessage());
            }
        });
    }

    @Test
    void aDeviceAsOutputIsRefusedNotNumbered() {
        GenerateRequest r = GenerateRequest.builder(Golden.model("tiny-sd1-fp16.safetensors")).size(64, 64).steps(1)
                .output(Path.of("/dev/full")).build();
        GenerateException e = assertThrows(GenerateException.class,
                () -> Pipeline.generate(r, ProgressListener.NONE, CancellationToken.none()));
        assertTrue(e.getMessage().contains("/dev/full") && e.getMessage().contains("character device"),
                e.getMessage());
        assertTrue(!Files.exists(Path.of("/dev/full_1")));
    }

    @Test
    void threadsAreBounded() {
        GenerateRequest r = GenerateRequest.builder(Golden.model("tiny-sd1-fp16.safetensors")).size(64, 64).steps(1)
                .threads(10_000).build();
        GenerateException e = assertThrows(GenerateException.class,
                () -> Pipeline.generate(r, ProgressListener.NONE, CancellationToken.none()));
        assertTrue(e.getMessage().startsWith("threads must be 1.."), e.getMessage());
        int before = Thread.activeCount();
        assertThrows(IllegalArgumentException.class, () -> jdiffusion.tensor.Parallel.setThreads(10_000));
        assertTrue(Thread.activeCount() < before + 100, "no threads were started");
    }
}
