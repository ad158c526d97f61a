package jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;

/**
 * The diffusers names derived from the UNet's structure, checked against the golden diffusers-layout copy of the
 * tiny SDXL UNet: every LDM tensor maps to a diffusers tensor holding the same values, and all of them are reached.
 */
class UnetLayoutTest {
    @Test
    void ldmToDiffusersCoversTheDiffusersUnetFileExactly() throws Exception {
        try (SafeTensors ckpt = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"));
             SafeTensors diffusers = SafeTensors.open(Golden.model("tiny-sdxl-unet-diffusers-fp16.safetensors"))) {
            Weights unet = Weights.prefixed(ckpt, "model.diffusion_model.");
            UnetLayout layout = UnetLayout.of(unet.names());
            assertEquals(2, layout.resPerLevel());
            Set<String> reached = new HashSet<>();
            for (String name : unet.names()) {
                int dot = name.lastIndexOf('.');
                String mapped = layout.toDiffusers(name.substring(0, dot));
                assertNotNull(mapped, "no diffusers name for " + name);
                String full = mapped + name.substring(dot);
                assertTrue(diffusers.contains(full), name + " -> " + full + " is not in the diffusers file");
                assertArrayEquals(unet.get(name), diffusers.floats(full), name + " -> " + full + " holds other values");
                reached.add(full);
            }
            assertEquals(diffusers.names(), reached);
        }
    }

    @Test
    void sd1LevelsWithoutAttentionPutTheUpsamplerAtSubmoduleOne() throws Exception {
        try (SafeTensors ckpt = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            UnetLayout layout = UnetLayout.of(Weights.prefixed(ckpt, "model.diffusion_model.").names());
            assertEquals("up_blocks.0.upsamplers.0.conv", layout.toDiffusers("output_blocks.2.1.conv"));
            assertEquals("up_blocks.1.upsamplers.0.conv", layout.toDiffusers("output_blocks.5.2.conv"));
            assertEquals("down_blocks.2.downsamplers.0.conv", layout.toDiffusers("input_blocks.9.0.op"));
            assertEquals("mid_block.resnets.1.conv_shortcut", layout.toDiffusers("middle_block.2.skip_connection"));
            assertEquals("up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2", layout.toDiffusers("output_blocks.11.1.transformer_blocks.0.ff.net.2"));
        }
    }
}
