package jdiffusion.io;

import java.util.Map;

/**
 * The tensors of a ControlNet file under canonical LDM names (cldm.py's: {@code input_blocks.*}, {@code zero_convs.N.0},
 * {@code middle_block_out.0}, {@code input_hint_block.K}), whatever layout the file uses: the original ControlNet-v1.1
 * layout with its {@code control_model.} prefix (also inside full checkpoints that carry a base model beside it), the
 * same without the prefix, or diffusers' ControlNetModel ({@code controlnet_down_blocks.*}).
 */
public final class ControlNetWeights {
    private ControlNetWeights() {
    }

    public static MappedWeights of(SafeTensors file) throws ModelFormatException {
        String where = file.path().toString();
        if (file.contains(CheckpointLayouts.CONTROLNET_PREFIX + CheckpointLayouts.CONTROLNET_MARKER)) {
            return MappedWeights.prefixed(file, CheckpointLayouts.CONTROLNET_PREFIX);
        }
        if (CheckpointLayouts.isDiffusersControlNet(file.names())) {
            Map<String, String> names = CheckpointLayouts.diffusersControlNetToLdm(file.names(), where);
            return new MappedWeights(file, names);
        }
        if (file.contains(CheckpointLayouts.CONTROLNET_MARKER)) {
            return MappedWeights.prefixed(file, "");
        }
        throw new ModelFormatException(where + ": not a ControlNet file (no " + CheckpointLayouts.CONTROLNET_PREFIX
                + "input_hint_block.*, input_hint_block.* or diffusers controlnet_cond_embedding.* tensors)");
    }
}
