package jdiffusion.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * {@code --embeddings DIR}: the folder {@code embedding:name} in prompts is looked up in (textual inversion,
 * {@code .safetensors} or {@code .pt}). Default: the base dir's {@code models/embeddings}, the base dir being the
 * one the checkpoint sits in ({@code BASE/models/checkpoints/x.safetensors}) or else the current folder; none when
 * that folder does not exist.
 */
public final class EmbeddingsOption {
    @Option(names = "--embeddings", paramLabel = "DIR",
            description = "textual-inversion embeddings for embedding:NAME in prompts (default: the base dir's"
                    + " models/embeddings, beside the checkpoint's models/checkpoints or in the current folder)")
    Path embeddings;

    /** The folder to use for a generation with this checkpoint, or null for none. */
    Path folder(Path model) {
        if (embeddings != null) {
            return embeddings;
        }
        Path abs = model == null ? null : model.toAbsolutePath().normalize();
        if (abs != null && abs.getParent() != null && abs.getParent().getParent() != null
                && abs.getParent().getParent().getFileName() != null
                && abs.getParent().getParent().getFileName().toString().equals("models")) {
            Path beside = abs.getParent().getParent().resolve("embeddings");
            if (Files.isDirectory(beside)) {
                return beside;
            }
        }
        Path here = Path.of("models", "embeddings");
        return Files.isDirectory(here) ? here : null;
    }
}
