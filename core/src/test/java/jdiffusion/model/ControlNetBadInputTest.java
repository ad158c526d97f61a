package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.Set;
import jdiffusion.Golden;
import jdiffusion.io.ControlNetWeights;
import jdiffusion.io.MappedWeights;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;

/**
 * ControlNet files that do not fit: a missing zero conv, a tensor of the wrong shape, a UNet file given as a
 * ControlNet, residuals handed to the wrong UNet; each a one-line error naming the problem. And the layouts: the two
 * tiny SD1 files map to the same canonical names and values, and the inferred configurations say what they are.
 */
class ControlNetBadInputTest {

    private static Path file(String name) {
        return Golden.model(name);
    }

    /** The tensors of w except those named in drop. */
    private static Weights without(Weights w, String... drop) {
        Set<String> names = new LinkedHashSet<>(w.names());
        for (String d : drop) {
            names.remove(d);
        }
        return new Weights() {
            public Set<String> names() {
                return names;
            }

            public boolean has(String n) {
                return names.contains(n);
            }

            public int[] shape(String n) {
                return w.shape(n);
            }

            public float[] get(String n) {
                return w.get(n);
            }
        };
    }

    @Test
    void missingZeroConvIsNamed() throws Exception {
        try (SafeTensors f = SafeTensors.open(file("tiny-sd1-controlnet-fp16.safetensors"))) {
            Weights w = without(ControlNetWeights.of(f), "zero_convs.11.0.weight", "zero_convs.11.0.bias");
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> ControlNet.load(w));
            assertTrue(e.getMessage().contains("zero convs"), e.getMessage());
            Weights noMid = without(ControlNetWeights.of(f), "middle_block_out.0.weight");
            e = assertThrows(ModelFormatException.class, () -> ControlNet.load(noMid));
            assertTrue(e.getMessage().contains("middle_block_out.0.weight"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"));
        }
    }

    @Test
    void wrongShapeIsNamed() throws Exception {
        try (SafeTensors f = SafeTensors.open(file("tiny-sd1-controlnet-fp16.safetensors"))) {
            Weights base = ControlNetWeights.of(f);
            Weights bad = new Weights() {
                public Set<String> names() {
                    return base.names();
                }

                public boolean has(String n) {
                    return base.has(n);
                }

                public int[] shape(String n) {
                    return n.equals("zero_convs.3.0.weight") ? new int[] {16, 32, 1, 1} : base.shape(n);
                }

                public float[] get(String n) {
                    return n.equals("zero_convs.3.0.weight") ? new float[16 * 32] : base.get(n);
                }
            };
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> ControlNet.load(bad));
            assertTrue(e.getMessage().contains("zero_convs.3.0"), e.getMessage());
        }
    }

    @Test
    void aUnetFileIsNotAControlNet() throws Exception {
        try (SafeTensors f = SafeTensors.open(file("tiny-sd1-fp16.safetensors"))) {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> ControlNetWeights.of(f));
            assertTrue(e.getMessage().contains("not a ControlNet file"), e.getMessage());
        }
    }

    @Test
    void bothLayoutsGiveTheSameCanonicalTensors() throws Exception {
        try (SafeTensors ldm = SafeTensors.open(file("tiny-sd1-controlnet-fp16.safetensors"));
             SafeTensors diff = SafeTensors.open(file("tiny-sd1-controlnet-diffusers-fp16.safetensors"))) {
            MappedWeights a = ControlNetWeights.of(ldm);
            MappedWeights b = ControlNetWeights.of(diff);
            assertEquals(new HashSet<>(a.names()), new HashSet<>(b.names()));
            assertEquals(ldm.names().size(), a.names().size(), "every tensor of the file is used");
            assertEquals(diff.names().size(), b.names().size(), "every tensor of the file is used");
            for (String n : a.names()) {
                Golden.assertClose(n, a.get(n), b.get(n), 0);
            }
        }
    }

    @Test
    void configsSayWhatTheFilesAre() throws Exception {
        try (SafeTensors sd1 = SafeTensors.open(file("tiny-sd1-controlnet-fp16.safetensors"));
             SafeTensors xl = SafeTensors.open(file("tiny-sdxl-controlnet-diffusers-fp16.safetensors"))) {
            ControlNetConfig a = ControlNetConfig.infer(ControlNetWeights.of(sd1));
            assertEquals(Family.SD1, a.family());
            assertEquals(12, a.skips());
            assertEquals(8, a.hintDownsampling());
            assertEquals("[16, 16, 32, 32, 96, 96, 256, 32]", java.util.Arrays.toString(a.hintWidths()));
            ControlNetConfig b = ControlNetConfig.infer(ControlNetWeights.of(xl));
            assertEquals(Family.SDXL, b.family());
            assertEquals(9, b.skips());
            assertTrue(b.admInChannels() > 0);
        }
    }

    @Test
    void residualsForAnotherUnetAreRefused() throws Exception {
        try (SafeTensors cnFile = SafeTensors.open(file("tiny-sdxl-controlnet-diffusers-fp16.safetensors"));
             SafeTensors sd1 = SafeTensors.open(file("tiny-sd1-fp16.safetensors"))) {
            ControlNet xl = ControlNet.load(ControlNetWeights.of(cnFile));
            UNet unet = UNet.load(Weights.prefixed(sd1, "model.diffusion_model."));
            assertFalse(xl.config().fits(unet.config()));
            java.util.List<ControlResiduals.FeatureMap> down = new java.util.ArrayList<>();
            for (int i = 0; i < 9; i++) {
                down.add(new ControlResiduals.FeatureMap(new float[32], 1, 1, 1, 32));
            }
            ControlResiduals r = new ControlResiduals(down, new ControlResiduals.FeatureMap(new float[128], 1, 1, 1, 128));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> unet.forwardWithControl(
                    new float[4 * 64], 1, 8, 8, new float[] {1}, new float[77 * 64], 77, null, r));
            assertTrue(e.getMessage().contains("9 ControlNet skip residuals"), e.getMessage());
            IllegalArgumentException hint = assertThrows(IllegalArgumentException.class, () -> xl.encodeHint(
                    new float[10], 1, 8, 8));
            assertTrue(hint.getMessage().contains("hint holds 10 values"), hint.getMessage());
        }
    }
}
