package jdiffusion.lora;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.lora.LoraModule.Role;

/**
 * A LoRA safetensors file parsed into modules: kohya ({@code lora_unet_*}, {@code lora_te_*}, {@code lora_te1_*},
 * {@code lora_te2_*} with {@code lora_down/lora_up/alpha}), diffusers/PEFT ({@code unet.}, {@code text_encoder.},
 * {@code text_encoder_2.} prefixes with {@code lora_A/lora_B}, {@code .lora.down/.lora.up}, the older
 * {@code processor.to_q_lora.down} form, or no prefix for a UNet-only file), ComfyUI's ({@code diffusion_model.},
 * {@code text_encoders.clip_l/clip_g.transformer.}), LyCORIS LoHa ({@code hada_*}) and LoKr ({@code lokr_*}). The tensors stay memory-mapped: keep the file open while weights patched with it are read.
 */
public final class LoraFile implements AutoCloseable {
    /** Role suffixes, most specific first (a key is module + "." + suffix). */
    private static final List<Map.Entry<String, Role>> SUFFIXES = List.of(
            Map.entry("lora_down.weight", Role.DOWN), Map.entry("lora_up.weight", Role.UP),
            Map.entry("lora_mid.weight", Role.MID),
            Map.entry("lora_A.weight", Role.DOWN), Map.entry("lora_B.weight", Role.UP),
            Map.entry("lora_linear_layer.down.weight", Role.DOWN), Map.entry("lora_linear_layer.up.weight", Role.UP),
            Map.entry("lora.down.weight", Role.DOWN), Map.entry("lora.up.weight", Role.UP),
            Map.entry("alpha", Role.ALPHA), Map.entry("dora_scale", Role.DORA_SCALE),
            Map.entry("hada_w1_a", Role.HADA_W1_A), Map.entry("hada_w1_b", Role.HADA_W1_B),
            Map.entry("hada_w2_a", Role.HADA_W2_A), Map.entry("hada_w2_b", Role.HADA_W2_B),
            Map.entry("hada_t1", Role.HADA_T1), Map.entry("hada_t2", Role.HADA_T2),
            Map.entry("lokr_w1", Role.LOKR_W1), Map.entry("lokr_w1_a", Role.LOKR_W1_A),
            Map.entry("lokr_w1_b", Role.LOKR_W1_B), Map.entry("lokr_w2", Role.LOKR_W2),
            Map.entry("lokr_w2_a", Role.LOKR_W2_A), Map.entry("lokr_w2_b", Role.LOKR_W2_B),
            Map.entry("lokr_t2", Role.LOKR_T2), Map.entry("diff", Role.DIFF));

    /** diffusers' attention-processor layout: attn1.processor.to_q_lora.down.weight. */
    private static final Pattern PROCESSOR = Pattern.compile("(.*)\\.processor\\.(to_q|to_k|to_v|to_out)_lora\\.(up|down)\\.weight");

    /** Component prefixes: kohya (underscore paths) and diffusers/PEFT (dotted paths). */
    private static final List<Map.Entry<String, Component>> PREFIXES = List.of(
            Map.entry("lora_unet_", Component.UNET), Map.entry("lora_te1_", Component.TE1),
            Map.entry("lora_te2_", Component.TE2), Map.entry("lora_te_", Component.TE1),
            Map.entry("unet.", Component.UNET), Map.entry("text_encoder_2.", Component.TE2),
            Map.entry("text_encoder.", Component.TE1),
            // ComfyUI's own LoRA files: LDM names under diffusion_model., text encoders by slot
            Map.entry("model.diffusion_model.", Component.UNET), Map.entry("diffusion_model.", Component.UNET),
            Map.entry("text_encoders.clip_l.transformer.", Component.TE1),
            Map.entry("text_encoders.clip_h.transformer.", Component.TE1),
            Map.entry("text_encoders.clip_g.transformer.", Component.TE2));

    private final SafeTensors file;
    private final boolean owned;
    private final List<LoraModule> modules;
    private final List<String> unrecognized;

    private LoraFile(SafeTensors file, boolean owned, List<LoraModule> modules, List<String> unrecognized) {
        this.file = file;
        this.owned = owned;
        this.modules = modules;
        this.unrecognized = unrecognized;
    }

    /** Opens and parses a LoRA file; errors (not safetensors, rank mismatch, no LoRA tensors...) name the file. */
    public static LoraFile open(Path path) throws ModelFormatException {
        SafeTensors st = SafeTensors.open(path);
        try {
            return parse(st, true);
        } catch (ModelFormatException | RuntimeException e) {
            st.close();
            throw e;
        }
    }

    /** Parses an already open file; closing the LoraFile leaves it open. */
    public static LoraFile of(SafeTensors file) throws LoraException {
        return parse(file, false);
    }

    /**
     * True when the file holds LoRA/LoHa/LoKr tensors (a key with a LoRA role other than alpha), so a command like
     * {@code info} can tell a LoRA from a checkpoint before parsing it fully.
     */
    public static boolean isLora(SafeTensors file) {
        for (String key : file.names()) {
            Parsed p = parseKey(key);
            if (p != null && p.role != Role.ALPHA) {
                return true;
            }
        }
        return false;
    }

    private static LoraFile parse(SafeTensors st, boolean owned) throws LoraException {
        Map<String, Group> groups = new LinkedHashMap<>();
        List<String> unrecognized = new ArrayList<>();
        for (String key : st.names()) {
            Parsed p = parseKey(key);
            if (p == null) {
                unrecognized.add(key);
                continue;
            }
            Group g = groups.computeIfAbsent(p.component + "/" + p.path,
                    k -> new Group(p.moduleName, p.component, p.path, p.style, new EnumMap<>(Role.class)));
            String old = g.keys.put(p.role, key);
            if (old != null) {
                throw new LoraException(st.path() + ": keys '" + old + "' and '" + key + "' both give module '"
                        + p.moduleName + "' its " + p.role.name().toLowerCase());
            }
        }
        List<LoraModule> modules = new ArrayList<>();
        for (Group g : groups.values()) {
            if (g.keys.size() == 1 && g.keys.containsKey(Role.ALPHA)) {
                unrecognized.add(g.keys.get(Role.ALPHA));
                continue;
            }
            modules.add(LoraModule.create(st, g.name, g.component, g.path, g.style, g.keys));
        }
        if (modules.isEmpty()) {
            throw new LoraException(st.path() + ": not a LoRA file (none of its " + st.names().size()
                    + " tensors is a LoRA, LoHa or LoKr weight" + (st.names().isEmpty() ? "" : ", e.g. '"
                    + st.names().iterator().next() + "'") + ")");
        }
        return new LoraFile(st, owned, List.copyOf(modules), List.copyOf(unrecognized));
    }

    private record Group(String name, Component component, String path, String style, Map<Role, String> keys) {
    }

    private record Parsed(String moduleName, Component component, String path, String style, Role role) {
    }

    /** Splits a key into module, component and role; null when it is no LoRA tensor we know. */
    private static Parsed parseKey(String key) {
        String module = null;
        Role role = null;
        String style = null;
        Matcher m = PROCESSOR.matcher(key);
        if (m.matches()) {
            module = m.group(1) + "." + (m.group(2).equals("to_out") ? "to_out.0" : m.group(2));
            role = m.group(3).equals("up") ? Role.UP : Role.DOWN;
            style = "diffusers";
        } else {
            for (Map.Entry<String, Role> e : SUFFIXES) {
                if (key.endsWith("." + e.getKey())) {
                    module = key.substring(0, key.length() - e.getKey().length() - 1);
                    role = e.getValue();
                    style = e.getKey().startsWith("lora_A") || e.getKey().startsWith("lora_B") ? "PEFT"
                            : e.getKey().startsWith("lora.") || e.getKey().startsWith("lora_linear") ? "diffusers" : null;
                    break;
                }
            }
        }
        if (module == null || module.isEmpty()) {
            return null;
        }
        String moduleName = module;
        if (module.startsWith("base_model.model.")) {
            module = module.substring("base_model.model.".length());
        }
        Component component = Component.UNET;
        String path = module;
        for (Map.Entry<String, Component> e : PREFIXES) {
            if (module.startsWith(e.getKey())) {
                component = e.getValue();
                path = module.substring(e.getKey().length());
                if (style == null) {
                    style = e.getKey().startsWith("lora_") ? "kohya"
                            : e.getValue() == Component.UNET && e.getKey().contains("diffusion_model.")
                                    || e.getKey().startsWith("text_encoders.") ? "ComfyUI" : "diffusers";
                }
                break;
            }
        }
        return new Parsed(moduleName, component, path, style == null ? "diffusers" : style, role);
    }

    public SafeTensors safetensors() {
        return file;
    }

    public Path path() {
        return file.path();
    }

    public String fileName() {
        return file.path().getFileName().toString();
    }

    public List<LoraModule> modules() {
        return modules;
    }

    /** Keys that are no LoRA tensor of a known format (they can never be applied). */
    public List<String> unrecognizedKeys() {
        return unrecognized;
    }

    /** Number of tensors in the file. */
    public int keyCount() {
        return file.names().size();
    }

    /** The model family the file was made for, read from module names and shapes (see {@link FamilyGuess}). */
    public Family family() {
        return FamilyGuess.of(modules);
    }

    @Override
    public void close() {
        if (owned) {
            file.close();
        }
    }
}
