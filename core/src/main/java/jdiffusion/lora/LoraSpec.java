package jdiffusion.lora;

import java.nio.file.Path;

/**
 * One {@code --lora FILE[:STRENGTH[:CLIP_STRENGTH]]} argument: the UNet strength (default 1) and the text encoders'
 * strength (default: the UNet strength, so {@code FILE:0.8} applies 0.8 everywhere).
 */
public record LoraSpec(Path file, float strength, float clipStrength) {

    /** Parses FILE[:STRENGTH[:CLIP_STRENGTH]]; a trailing part that is not a number stays part of the file name. */
    public static LoraSpec parse(String arg) {
        if (arg == null || arg.isBlank()) {
            throw new IllegalArgumentException("--lora needs FILE[:STRENGTH[:CLIP_STRENGTH]], got an empty value");
        }
        String file = arg;
        Float[] numbers = new Float[2];
        int found = 0;
        while (found < 2) {
            int colon = file.lastIndexOf(':');
            if (colon <= 0) {
                break;
            }
            Float v = number(file.substring(colon + 1));
            if (v == null) {
                break;
            }
            numbers[found++] = v;
            file = file.substring(0, colon);
        }
        if (file.isBlank()) {
            throw new IllegalArgumentException("--lora '" + arg + "': no file name");
        }
        float strength = found == 0 ? 1f : numbers[found - 1];
        float clip = found == 2 ? numbers[0] : strength;
        return new LoraSpec(Path.of(file), strength, clip);
    }

    private static Float number(String s) {
        if (s.isEmpty() || !s.matches("[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?")) {
            return null;
        }
        float v = Float.parseFloat(s);
        return Float.isFinite(v) ? v : null;
    }
}
