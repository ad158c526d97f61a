package jdiffusion.cli;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
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
        String env = System.getenv("JDIFFUSION_GOLDEN");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        String root = System.getProperty("jdiffusion.root", System.getProperty("user.dir") + "/..");
        return Path.of(root).resolve("../shared/golden").normalize();
    }

    static Path model(String name) {
        return golden().resolve("models").resolve(name);
    }

    static Run cli(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int exit = Main.run(args);
            return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
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
