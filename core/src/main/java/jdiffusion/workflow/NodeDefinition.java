package jdiffusion.workflow;

import java.util.List;
import java.util.Map;

/**
 * A node class: ComfyUI's name, its inputs and outputs as ComfyUI declares them, and what it does.
 *
 * @param hidden the hidden inputs ComfyUI fills itself (SaveImage's PROMPT and EXTRA_PNGINFO)
 */
public record NodeDefinition(String name, String displayName, String category, String description,
        boolean outputNode, List<InputSpec> inputs, List<String> outputTypes, List<String> outputNames,
        Map<String, String> hidden, Function function) {

    /** A node's work: its input values by name (widgets as Long / Double / String / Boolean) to its outputs. */
    @FunctionalInterface
    public interface Function {
        NodeResult run(Map<String, Object> inputs, NodeContext context);
    }

    public InputSpec input(String inputName) {
        for (InputSpec s : inputs) {
            if (s.name().equals(inputName)) {
                return s;
            }
        }
        return null;
    }
}
