package jdiffusion.lora;

import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeSet;
import jdiffusion.io.SafeTensors;

/**
 * What a LoRA file is, without a model: its format(s), the family it was made for, ranks, alphas and how many
 * modules it has per component.
 *
 * @param format       e.g. "kohya LoRA", "diffusers/PEFT LoRA", "LyCORIS LoHa", joined with " + " when mixed
 * @param ranks        distinct ranks (LoKr without low-rank factors and full diffs have none)
 * @param alphas       distinct stored alphas
 * @param missingAlpha modules without a stored alpha (they use alpha = rank)
 * @param conv         modules whose change is a conv kernel (kh x kw > 1 or 4-D tensors)
 */
public record LoraInfo(String file, String format, Family family, SortedSet<Integer> ranks, SortedSet<Float> alphas,
                       int missingAlpha, Map<Component, Integer> modules, int keys, int conv,
                       List<String> unrecognizedKeys, Map<String, String> metadata) {

    /** Describes an open safetensors file; a file that is no LoRA gives a {@link LoraException}. */
    public static LoraInfo describe(SafeTensors file) throws LoraException {
        LoraFile lora = LoraFile.of(file);
        Set<String> formats = new LinkedHashSet<>();
        SortedSet<Integer> ranks = new TreeSet<>();
        SortedSet<Float> alphas = new TreeSet<>();
        Map<Component, Integer> modules = new EnumMap<>(Component.class);
        int missingAlpha = 0;
        int conv = 0;
        for (LoraModule m : lora.modules()) {
            formats.add(formatOf(m));
            if (m.rank() > 0) {
                ranks.add(m.rank());
            }
            if (m.alpha() != null) {
                alphas.add(m.alpha());
            } else {
                missingAlpha++;
            }
            if (m.keys().stream().anyMatch(k -> file.info(k).rank() == 4)) {
                conv++;
            }
            modules.merge(m.component(), 1, Integer::sum);
        }
        return new LoraInfo(lora.fileName(), String.join(" + ", formats), lora.family(),
                Collections.unmodifiableSortedSet(ranks), Collections.unmodifiableSortedSet(alphas), missingAlpha,
                Collections.unmodifiableMap(modules), lora.keyCount(), conv, lora.unrecognizedKeys(), file.metadata());
    }

    private static String formatOf(LoraModule m) {
        return switch (m.kind()) {
            case LOHA, LOKR -> "LyCORIS " + m.kind().label();
            case FULL -> "full weight diff";
            case LORA -> switch (m.style()) {
                case "kohya" -> "kohya LoRA";
                case "PEFT" -> "PEFT LoRA";
                case "ComfyUI" -> "ComfyUI LoRA";
                default -> "diffusers LoRA";
            };
        };
    }

    public int moduleCount() {
        return modules.values().stream().mapToInt(Integer::intValue).sum();
    }
}
