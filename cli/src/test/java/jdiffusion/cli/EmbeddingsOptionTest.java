package jdiffusion.cli;

import static jdiffusion.cli.CliTests.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code generate --embeddings DIR} and its default, the base dir's models/embeddings. */
class EmbeddingsOptionTest {
    @TempDir
    Path base;

    private static GenerateCommand parse(String... args) {
        GenerateCommand c = new GenerateCommand();
        new CommandLine(c).parseArgs(args);
        return c;
    }

    @Test
    void explicitFolderAndTheBaseDirDefault() throws Exception {
        Path ckpt = base.resolve("models/checkpoints/x.safetensors");
        Files.createDirectories(ckpt.getParent());
        assertNull(parse("-m", ckpt.toString()).request().embeddings(), "no models/embeddings yet");
        Files.createDirectories(base.resolve("models/embeddings"));
        assertEquals(base.resolve("models/embeddings").toAbsolutePath().normalize(),
                parse("-m", ckpt.toString()).request().embeddings());
        assertEquals(Path.of("elsewhere"), parse("-m", ckpt.toString(), "--embeddings", "elsewhere").request().embeddings());
    }

    @Test
    void aMissingFolderIsAOneLineError() {
        CliTests.Result r = run("generate", "-m", CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors").toString(),
                "--embeddings", base.resolve("nope").toString(), "-o", base.resolve("x.png").toString());
        assertNotEquals(0, r.code());
        assertEquals(1, r.err().strip().split("\n").length, r.err());
        assertTrue(r.err().contains("embeddings folder") && r.err().contains("is not a directory"), r.err());
    }
}
