package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Issue 16 item 14: a models/checkpoints folder that is a symbolic link lists its files (as linked files did). */
class LinkedModelFolderTest {
    @TempDir
    Path dir;

    @Test
    void symlinkedCheckpointsFolderLists() throws Exception {
        Path store = dir.resolve("store");
        Path base = dir.resolve("base");
        Workflows.place(store, "checkpoints", "tiny-sd1-fp16.safetensors");
        Files.createDirectories(base.resolve("models"));
        Files.createSymbolicLink(base.resolve("models/checkpoints"), store.resolve("models/checkpoints"));
        ModelPaths paths = ModelPaths.of(base);
        assertEquals(List.of("tiny-sd1-fp16.safetensors"), paths.list("checkpoints"));
        assertEquals(store.resolve("models/checkpoints/tiny-sd1-fp16.safetensors").toRealPath(),
                paths.resolve("checkpoints", "tiny-sd1-fp16.safetensors").toRealPath());
    }
}
