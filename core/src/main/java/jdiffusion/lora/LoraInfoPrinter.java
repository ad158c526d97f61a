package jdiffusion.lora;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

/** The text {@code jdiffusion info LORA_FILE} prints for a {@link LoraInfo}. */
public final class LoraInfoPrinter {
    private LoraInfoPrinter() {
    }

    /** Lines without trailing newline, e.g. "format: kohya LoRA", "family: SDXL", "modules: 236 (UNet 200, ...)". */
    public static List<String> lines(LoraInfo info) {
        List<String> out = new ArrayList<>();
        out.add(info.file() + ": LoRA");
        out.add("  format:  " + info.format());
        out.add("  family:  " + info.family().label());
        out.add("  rank:    " + (info.ranks().isEmpty() ? "none (full-rank factors)" : join(info.ranks())));
        String alpha = info.alphas().isEmpty() ? "none" : join(info.alphas());
        if (info.missingAlpha() > 0) {
            alpha += " (" + info.missingAlpha() + " modules without alpha use alpha = rank)";
        }
        out.add("  alpha:   " + alpha);
        List<String> parts = new ArrayList<>();
        info.modules().forEach((c, n) -> parts.add(c.label() + " " + n));
        out.add("  modules: " + info.moduleCount() + " (" + String.join(", ", parts) + ")"
                + (info.conv() > 0 ? ", " + info.conv() + " of them conv" : ""));
        out.add("  keys:    " + info.keys() + (info.unrecognizedKeys().isEmpty() ? ""
                : " (" + info.unrecognizedKeys().size() + " not LoRA weights, e.g. " + info.unrecognizedKeys().getFirst() + ")"));
        return out;
    }

    public static String format(LoraInfo info) {
        return String.join("\n", lines(info));
    }

    private static String join(java.util.Collection<? extends Number> values) {
        return values.stream().map(String::valueOf).collect(Collectors.joining(", "));
    }
}
