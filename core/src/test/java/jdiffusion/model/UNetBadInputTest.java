package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import jdiffusion.Golden;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;

/** Weights that do not fit, and inputs that do not fit, fail with one line naming the tensor or the value. */
class UNetBadInputTest {

    /** A view of real weights with some tensors hidden and some shapes misreported. */
    private static Weights tampered(Weights real, Set<String> hidden, Map<String, int[]> shapes) {
        Set<String> names = new LinkedHashSet<>(real.names());
        names.removeAll(hidden);
        return new Weights() {
            @Override
            public Set<String> names() {
                return names;
            }

            @Override
            public boolean has(String name) {
                return names.contains(name);
            }

            @Override
            public int[] shape(String name) {
                return shapes.containsKey(name) ? shapes.get(name) : real.shape(name);
            }

            @Override
            public float[] get(String name) {
                return real.get(name);
            }
        };
    }

    private static void assertOneLine(String message, String... mustContain) {
        assertFalse(message.contains("\n"), "one line: " + message);
        for (String s : mustContain) {
            assertTrue(message.contains(s), "'" + message + "' should name " + s);
        }
    }

    @Test
    void missingTransformerTensorIsNamed() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Weights w = tampered(Weights.prefixed(f, "model.diffusion_model."),
                    Set.of("input_blocks.4.1.transformer_blocks.0.attn2.to_v.weight"), Map.of());
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> UNet.load(w));
            assertOneLine(e.getMessage(), "input_blocks.4.1.transformer_blocks.0.attn2.to_v.weight");
        }
    }

    @Test
    void wrongShapeIsNamedWithTheShape() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            Weights w = tampered(Weights.prefixed(f, "model.diffusion_model."), Set.of(),
                    Map.of("middle_block.0.in_layers.2.weight", new int[] {128, 64, 3, 3}));
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> UNet.load(w));
            assertOneLine(e.getMessage(), "middle_block.0.in_layers.2.weight", "[128, 64, 3, 3]");
        }
    }

    @Test
    void aVaeIsNotAUnet() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> UNet.load(Weights.prefixed(f, "first_stage_model.")));
            assertOneLine(e.getMessage(), "input_blocks.0.0.weight");
        }
    }

    @Test
    void contextOfTheWrongWidthIsRejectedBeforeAnyWork() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            UNet unet = UNet.load(Weights.prefixed(f, "model.diffusion_model."));
            assertEquals(64, unet.config().contextDim());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> unet.forward(new float[4 * 8 * 8], 1, 8, 8, new float[] {1}, new float[77 * 768], 77, null));
            assertOneLine(e.getMessage(), "context", "1x77x64");
            IllegalArgumentException adm = assertThrows(IllegalArgumentException.class,
                    () -> unet.forward(new float[4 * 8 * 8], 1, 8, 8, new float[] {1}, new float[77 * 64], 77,
                            new float[2816]));
            assertOneLine(adm.getMessage(), "adm");
        }
    }

    @Test
    void sdxlUnetWithoutAdmVectorIsRejected() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            UNet unet = UNet.load(Weights.prefixed(f, "model.diffusion_model."));
            assertEquals(1664, unet.config().admInChannels());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> unet.forward(new float[4 * 8 * 8], 1, 8, 8, new float[] {1}, new float[77 * 192], 77, null));
            assertOneLine(e.getMessage(), "1x1664");
        }
    }

    @Test
    void headsThatDoNotDivideTheWidthAreAFormatError() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> UNet.load(Weights.prefixed(f, "model.diffusion_model."), UNetConfig.HeadsRule.fixedHeads(3)));
            assertOneLine(e.getMessage(), "proj_in", "3 heads");
        }
    }

    @Test
    void vaeMissingAttentionNormIsNamed() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Weights w = tampered(Weights.prefixed(f, "first_stage_model."), Set.of("decoder.mid.attn_1.norm.weight"),
                    Map.of());
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> Vae.load(w));
            assertOneLine(e.getMessage(), "VAE", "decoder.mid.attn_1.norm.weight");
        }
    }

    @Test
    void vaeRejectsAnImageNotAMultipleOfEight() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Vae vae = Vae.load(Weights.prefixed(f, "first_stage_model."));
            assertEquals(8, vae.downscale());
            assertEquals(4, vae.latentChannels());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> vae.encode(new float[3 * 60 * 64], 1, 60, 64));
            assertOneLine(e.getMessage(), "64x60");
        }
    }

    @Test
    void decodeTooLargeForJavaArraysIsRejectedBeforeAllocating() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Vae vae = Vae.load(Weights.prefixed(f, "first_stage_model."));
            // the tiny decoder is 64 wide at the top: 64 x 16384 x 16384 values; the latent itself stays small
            int h = 2048;
            int w = 2048;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> vae.decode(new float[4 * h * w], 1, h, w, VaeTiling.never()));
            assertOneLine(e.getMessage(), "16384x16384", "Java array");
        }
    }
}
