package jdiffusion.workflow;

import java.math.BigInteger;
import java.util.List;
import java.util.Map;

/**
 * One input of a node class as ComfyUI's {@code INPUT_TYPES} declares it: a name, a type (a link type such as MODEL,
 * or a widget type INT / FLOAT / STRING / BOOLEAN / COMBO) and the widget's options (default, min, max, step, round;
 * for a combo the list of allowed values, which may come from a model folder).
 */
public record InputSpec(String name, String type, boolean optional, Object defaultValue, Number min, Number max,
        Number step, Number round, Choices choices, Map<String, Object> extra) {

    /** The allowed values of a combo input, computed when asked (a model folder's current files). */
    @FunctionalInterface
    public interface Choices {
        List<String> list(ModelPaths paths);
    }

    /** ComfyUI's 0xffffffffffffffff: the largest seed. */
    public static final BigInteger MAX_SEED = new BigInteger("18446744073709551615");
    /** nodes.MAX_RESOLUTION. */
    public static final int MAX_RESOLUTION = 16384;

    public static final List<String> WIDGET_TYPES = List.of("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO");

    public boolean isWidget() {
        return WIDGET_TYPES.contains(type);
    }

    public static InputSpec link(String name, String type) {
        return new InputSpec(name, type, false, null, null, null, null, null, null, Map.of());
    }

    public static InputSpec integer(String name, long def, Number min, Number max, long step) {
        return new InputSpec(name, "INT", false, def, min, max, step, null, null, Map.of());
    }

    public static InputSpec seed(String name) {
        return new InputSpec(name, "INT", false, 0L, 0L, MAX_SEED, 1L, null, null,
                Map.of("control_after_generate", true));
    }

    public static InputSpec number(String name, double def, double min, double max, double step, Double round) {
        return new InputSpec(name, "FLOAT", false, def, min, max, step, round, null, Map.of());
    }

    public static InputSpec text(String name, String def, boolean multiline) {
        Map<String, Object> extra = multiline ? Map.of("multiline", true, "dynamicPrompts", true) : Map.of();
        return new InputSpec(name, "STRING", false, def, null, null, null, null, null, extra);
    }

    public static InputSpec bool(String name, boolean def) {
        return new InputSpec(name, "BOOLEAN", false, def, null, null, null, null, null, Map.of());
    }

    public static InputSpec combo(String name, List<String> values) {
        return new InputSpec(name, "COMBO", false, values.getFirst(), null, null, null, null, p -> values, Map.of());
    }

    /** A combo of a model folder's files (ComfyUI's folder_paths.get_filename_list). */
    public static InputSpec files(String name, String kind) {
        return new InputSpec(name, "COMBO", false, null, null, null, null, null, p -> p.list(kind),
                Map.of("folder", kind));
    }

    public static InputSpec inputImages(String name) {
        return new InputSpec(name, "COMBO", false, null, null, null, null, null, ModelPaths::inputImages,
                Map.of("image_upload", true));
    }
}
