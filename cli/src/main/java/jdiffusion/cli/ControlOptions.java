package jdiffusion.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import jdiffusion.pipeline.GenerateRequest;
import picocli.CommandLine.Option;

/** generate's ControlNet flags (a picocli mixin): {@code --control} (repeatable), the preprocessor and its thresholds. */
public final class ControlOptions {
    @Option(names = "--control", paramLabel = "FILE:HINT.png[:STRENGTH[:START:END]]",
            description = "ControlNet file and hint image, strength (default 1), window start/end in [0, 1] (ComfyUI"
                    + " percents, or diffusers control_guidance_start/end with a diffusers spacing); repeatable")
    List<String> controls = new ArrayList<>();

    @Option(names = "--control-preprocess", paramLabel = "MODULE",
            description = "preprocess every hint: none (default), canny, invert")
    String preprocess = "none";

    @Option(names = "--canny-low", paramLabel = "T", description = "canny low threshold in [0.01, 0.99] (default 0.4)")
    double cannyLow = 0.4;

    @Option(names = "--canny-high", paramLabel = "T", description = "canny high threshold (default 0.8)")
    double cannyHigh = 0.8;

    List<GenerateRequest.ControlSpec> specs() {
        List<GenerateRequest.ControlSpec> out = new ArrayList<>();
        String module = preprocess.toLowerCase(Locale.ROOT);
        for (String arg : controls) {
            out.add(parse(arg, module, cannyLow, cannyHigh));
        }
        return out;
    }

    /**
     * FILE:HINT[:STRENGTH[:START:END]]: up to three trailing numbers, then the hint is what follows the last colon
     * of the rest (a drive letter such as C: stays with its path).
     */
    static GenerateRequest.ControlSpec parse(String arg, String module, double low, double high) {
        List<String> parts = new ArrayList<>(List.of(arg.split(":", -1)));
        List<Double> numbers = new ArrayList<>();
        while (numbers.size() < 3 && parts.size() > 2 && isNumber(parts.getLast())) {
            numbers.addFirst(Double.parseDouble(parts.removeLast()));
        }
        if (numbers.size() == 2) {
            throw new CliException("--control " + arg + ": give STRENGTH alone or STRENGTH:START:END, not two numbers");
        }
        int split = parts.size() - 1;
        if (split >= 2 && parts.get(split - 1).length() == 1 && Character.isLetter(parts.get(split - 1).charAt(0))
                && (parts.get(split).startsWith("\\") || parts.get(split).startsWith("/"))) {
            split--; // HINT is C:\...
        }
        String file = String.join(":", parts.subList(0, split));
        String hint = String.join(":", parts.subList(split, parts.size()));
        if (split < 1 || file.isEmpty() || hint.isEmpty()) {
            throw new CliException("--control " + arg + ": expected FILE:HINT.png[:STRENGTH[:START:END]]");
        }
        double strength = numbers.isEmpty() ? 1.0 : numbers.getFirst();
        double start = numbers.size() == 3 ? numbers.get(1) : 0.0;
        double end = numbers.size() == 3 ? numbers.get(2) : 1.0;
        return new GenerateRequest.ControlSpec(Path.of(file), Path.of(hint), strength, start, end, module, low, high);
    }

    private static boolean isNumber(String s) {
        try {
            double v = Double.parseDouble(s);
            return !s.isBlank() && !Double.isNaN(v) && Character.isDigit(s.charAt(s.length() - 1));
        } catch (NumberFormatException e) {
            return false;
        }
    }
}
