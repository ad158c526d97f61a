package jdiffusion.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.model.Family;
import jdiffusion.model.TextConditioner;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code jdiffusion tokenize -m FILE -p TEXT}: the token rows each text encoder of the checkpoint gets, as JSON
 * ({@code {"clip_l": [[49406, ...]], "clip_g": [[...]]}}), one 77-id row per 75-token chunk. Only the tensor names
 * are read; no weights are loaded.
 */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = "Print the CLIP token ids of a prompt for each text encoder of a checkpoint, as JSON.")
public final class TokenizeCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "FILE", description = "checkpoint (.safetensors)")
    Path model;

    @Option(names = {"-p", "--prompt"}, required = true, paramLabel = "TEXT", description = "the prompt")
    String prompt;

    @Override
    public Integer call() {
        Family family;
        try (SafeTensors file = SafeTensors.open(model)) {
            family = TextConditioner.detect(file);
        } catch (ModelFormatException e) {
            throw new CliException(e.getMessage());
        }
        Map<String, int[][]> tokens = TextConditioner.tokenize(family, prompt);
        try {
            System.out.println(new ObjectMapper().writeValueAsString(tokens));
        } catch (JsonProcessingException e) {
            throw new CliException("cannot write JSON: " + e.getMessage(), 1);
        }
        return 0;
    }
}
