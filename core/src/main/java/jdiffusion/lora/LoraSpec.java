package jdiffusion.lora;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * One {@code --lora FILE[:STRENGTH[:CLIP_STRENGTH]]} argument: the UNet strength (default 1) and the text encoders'
 * strength (default: the UNet strength, so {@code FILE:0.8} applies 0.8 everywhere). Strengths are finite numbers
 * within {@code -MAX_STRENGTH..MAX_STRENGTH} (ComfyUI's LoraLoader range).
 */
public record LoraSpec(Path file, float strength, float clipStrength) {
    /** ComfyUI's LoraLoader bounds strength_model and strength_clip to -100..100. */
    public static final float MAX_STRENGTH = 100f;

    private static final String USAGE = "FILE[:STRENGTH[:CLIP_STRENGTH]]";

    /**
     * Parses FILE[:STRENGTH[:CLIP_STRENGTH]]. The file is the whole argument when that exists, else the part before
     * the first colon that ends a model file name ({@code .safetensors}, or an existing file); what follows must be
     * one or two numbers. Without such a part, trailing numbers are taken as strengths and the rest as the name.
     *
     * @throws IllegalArgumentException naming what is wrong with the strength (not a number, not finite, out of
     *                                  range, empty, too many parts)
     */
    public static LoraSpec parse(String arg) {
        if (arg == null || arg.isBlank()) {
            throw new IllegalArgumentException("--lora needs " + USAGE + ", got an empty value");
        }
        if (Files.isRegularFile(Path.of(arg))) {
            return new LoraSpec(Path.of(arg), 1f, 1f);
        }
        for (int colon = arg.indexOf(':'); colon > 0; colon = arg.indexOf(':', colon + 1)) {
            String file = arg.substring(0, colon);
            String lower = file.toLowerCase(Locale.ROOT);
            if (lower.endsWith(".safetensors") || lower.endsWith(".ckpt") || lower.endsWith(".pt")
                    || lower.endsWith(".pth") || lower.endsWith(".bin") || Files.isRegularFile(Path.of(file))) {
                return withStrengths(arg, file, arg.substring(colon + 1).split(":", -1));
            }
        }
        // no recognisable file part: trailing numbers are strengths, as before
        if (arg.endsWith(":")) {
            throw new IllegalArgumentException("--lora '" + arg + "': empty strength after ':' (" + USAGE + ")");
        }
        String file = arg;
        int found = 0;
        while (found < 2) {
            int colon = file.lastIndexOf(':');
            if (colon <= 0 || !looksNumeric(file.substring(colon + 1))) {
                break;
            }
            file = file.substring(0, colon);
            found++;
        }
        if (found == 0) {
            return new LoraSpec(Path.of(file), 1f, 1f);
        }
        return withStrengths(arg, file, arg.substring(file.length() + 1).split(":", -1));
    }

    private static LoraSpec withStrengths(String arg, String file, String[] parts) {
        if (file.isBlank()) {
            throw new IllegalArgumentException("--lora '" + arg + "': no file name");
        }
        if (parts.length > 2) {
            throw new IllegalArgumentException("--lora '" + arg + "': " + parts.length + " strengths given; at most"
                    + " two (" + USAGE + ")");
        }
        float strength = strength(arg, parts[0], "strength");
        float clip = parts.length == 2 ? strength(arg, parts[1], "CLIP strength") : strength;
        return new LoraSpec(Path.of(file), strength, clip);
    }

    private static float strength(String arg, String s, String what) {
        if (s.isBlank()) {
            throw new IllegalArgumentException("--lora '" + arg + "': empty " + what + " after ':' (" + USAGE + ")");
        }
        double v;
        try {
            v = Double.parseDouble(s.strip());
        } catch (NumberFormatException e) {
            v = Double.NaN;
            if (!s.strip().equalsIgnoreCase("nan")) {
                throw new IllegalArgumentException("--lora '" + arg + "': " + what + " '" + s + "' is not a number ("
                        + USAGE + ")");
            }
        }
        if (!looksNumeric(s.strip()) || !Double.isFinite(v)) {
            throw new IllegalArgumentException("--lora '" + arg + "': " + what + " '" + s + "' is not a finite"
                    + " number");
        }
        if (Math.abs(v) > MAX_STRENGTH) {
            throw new IllegalArgumentException("--lora '" + arg + "': " + what + " " + s + " is out of range (-"
                    + (int) MAX_STRENGTH + ".." + (int) MAX_STRENGTH + ")");
        }
        return (float) v;
    }

    private static boolean looksNumeric(String s) {
        return s.matches("[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?");
    }
}
