package jdiffusion.lora;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What matching one LoRA file against a model did: modules applied per component, keys left unused (no module of
 * the model matches them, or their shapes do not fit) and why.
 *
 * @param unusedKeys keys of the file that change nothing
 * @param problems   one line per module that was not applied (name not found, shape misfit, component absent)
 */
public record LoraReport(String file, Family family, int keys, Map<Component, Integer> modulesApplied,
                         List<String> unusedKeys, List<String> problems) {
    /** How many keys and problems a warning lists before "and N more". */
    public static final int SHOWN = 5;

    public int modulesAppliedTotal() {
        return modulesApplied.values().stream().mapToInt(Integer::intValue).sum();
    }

    public int keysUsed() {
        return keys - unusedKeys.size();
    }

    /** "file: 218 modules applied (UNet 200, te1 18), 654 of 654 keys used". */
    public String summary() {
        List<String> parts = new ArrayList<>();
        modulesApplied.forEach((c, n) -> {
            if (n > 0) {
                parts.add(c.label() + " " + n);
            }
        });
        return file + ": " + modulesAppliedTotal() + " modules applied (" + String.join(", ", parts) + "), "
                + keysUsed() + " of " + keys + " keys used";
    }

    /** One line when some keys are unused: their count, the first few, and the first problem. */
    public Optional<String> warning() {
        if (unusedKeys.isEmpty()) {
            return Optional.empty();
        }
        String shown = String.join(", ", unusedKeys.subList(0, Math.min(SHOWN, unusedKeys.size())));
        String more = unusedKeys.size() > SHOWN ? " and " + (unusedKeys.size() - SHOWN) + " more" : "";
        String why = problems.isEmpty() ? "" : " (first: " + problems.getFirst() + ")";
        return Optional.of(file + ": " + unusedKeys.size() + " of " + keys + " keys match no module of the model and are ignored: "
                + shown + more + why);
    }
}
