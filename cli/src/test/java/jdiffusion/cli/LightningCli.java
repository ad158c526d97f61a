package jdiffusion.cli;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import jdiffusion.io.PngReader;

/** Helpers of the Lightning / preset / LoRA-info CLI tests: run the CLI in-process, find the golden files. */
final class LightningCli {
    static final ObjectMapper JSON = new ObjectMapper().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());

    private LightningCli() {
    }

    record Run(int exit, String out, String err) {
        /** A line of stderr starting with prefix, or an assertion error showing all of stderr. */
        String errLine(String prefix) {
            return err.lines().filter(l -> l.startsWith(prefix)).findFirst()
                    .orElseThrow(() -> new AssertionError("no line '" + prefix + "...' in:\n" + err));
        }
    }

    static Path golden() {
        return CliTests.golden();
    }

    static Path model(String name) {
        return golden().resolve("models").resolve(name);
    }

    static Run cli(String... args) {
        CliTests.Result r = CliTests.run(args);
        return new Run(r.code(), r.out(), r.err());
    }

    /** The KSampler node and (if any) the ModelSamplingDiscrete node of the workflow a PNG carries. */
    record Workflow(JsonNode ksampler, JsonNode modelSampling) {
    }

    static Workflow workflow(Path png) throws IOException {
        Map<String, String> text = PngReader.text(png);
        JsonNode wf = JSON.readTree(text.get("prompt"));
        JsonNode ks = null;
        JsonNode ms = null;
        for (JsonNode node : wf) {
            switch (node.path("class_type").asText()) {
                case "KSampler" -> ks = node.path("inputs");
                case "ModelSamplingDiscrete" -> ms = node.path("inputs");
                default -> {
                }
            }
        }
        if (ks == null) {
            throw new AssertionError("no KSampler in the PNG's workflow: " + text.get("prompt"));
        }
        return new Workflow(ks, ms);
    }
}
