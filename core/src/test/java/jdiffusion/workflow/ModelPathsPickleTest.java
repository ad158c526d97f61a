package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Model folders list PyTorch pickle files beside safetensors ones, and the embeddings folder exists. */
class ModelPathsPickleTest {
    @TempDir
    Path base;

    @Test
    void pickleExtensionsAreListed() throws Exception {
        ModelPaths paths = ModelPaths.of(base);
        Path dir = paths.folders("checkpoints").getFirst();
        for (String n : List.of("a.safetensors", "b.ckpt", "c.pt", "d.pth", "e.bin", "f.sft", "g.txt", "h.CKPT")) {
            Files.writeString(dir.resolve(n), "x");
        }
        assertEquals(List.of("a.safetensors", "b.ckpt", "c.pt", "d.pth", "e.bin", "f.sft", "h.CKPT"), paths.list("checkpoints"));
        assertEquals(base.toAbsolutePath().resolve("models/embeddings"), paths.folders("embeddings").getFirst());
    }
}
