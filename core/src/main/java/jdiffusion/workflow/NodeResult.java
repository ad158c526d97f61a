package jdiffusion.workflow;

import java.util.List;
import java.util.Map;

/**
 * What a node returns: its output values, in output-slot order, and for output nodes the "ui" part that ComfyUI
 * sends with the {@code executed} event and keeps in the history (e.g. {@code images: [{filename, subfolder, type}]}).
 */
public record NodeResult(List<Object> outputs, Map<String, Object> ui) {
    public static NodeResult of(Object... outputs) {
        return new NodeResult(List.of(outputs), null);
    }

    public static NodeResult ui(Map<String, Object> ui) {
        return new NodeResult(List.of(), ui);
    }
}
