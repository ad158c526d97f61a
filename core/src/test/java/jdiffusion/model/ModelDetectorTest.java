package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.CheckpointKeys;
import jdiffusion.io.DType;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.TensorInfo;
import jdiffusion.io.TinyConfigs;
import jdiffusion.model.ModelConfig.ComponentStats;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Family and every architecture number from names and shapes, for the tiny goldens and full-size layouts. */
class ModelDetectorTest {
    @TempDir
    Path dir;

    private static void assertArchitecture(ModelConfig expected, ModelConfig actual) {
        assertEquals(expected.family(), actual.family());
        assertEquals(expected.unet(), actual.unet());
        assertEquals(expected.vae(), actual.vae());
        assertEquals(expected.textEncoders(), actual.textEncoders());
    }

    @Test
    void tinySd1() throws Exception {
        try (Checkpoint ckpt = Checkpoint.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            ModelConfig c = ckpt.config();
            assertArchitecture(TinyConfigs.sd1(), c);
            assertEquals(8, c.unet().heads(128), "SD1: 8 heads whatever the width");
            assertEquals(ModelConfig.Prediction.EPS, c.prediction());
            assertStatsCoverTheFile(ckpt, c, List.of("unet", "vae", "clip_l"));
        }
    }

    @Test
    void tinySdxl() throws Exception {
        try (Checkpoint ckpt = Checkpoint.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            ModelConfig c = ckpt.config();
            assertArchitecture(TinyConfigs.sdxl(), c);
            assertEquals(2, c.unet().heads(128), "SDXL: head size 64");
            assertStatsCoverTheFile(ckpt, c, List.of("unet", "vae", "clip_l", "clip_g"));
        }
    }

    /** Per-component parameter counts add up to every float element of the file; dtype F16 throughout. */
    private static void assertStatsCoverTheFile(Checkpoint ckpt, ModelConfig c, List<String> components) {
        assertEquals(components, c.components().stream().map(ComponentStats::component).toList());
        long total = 0;
        long tensors = 0;
        for (TensorInfo t : ckpt.file().tensors().values()) {
            total += t.dtype().isFloat() ? t.numel() : 0;
            tensors++;
        }
        assertEquals(total, c.components().stream().mapToLong(ComponentStats::parameters).sum());
        assertEquals(tensors, c.components().stream().mapToLong(ComponentStats::tensors).sum());
        for (ComponentStats s : c.components()) {
            assertEquals(DType.F16, s.dtype(), s.component());
        }
    }

    @Test
    void fullSizeLayoutsGiveTheRealNumbers() throws Exception {
        for (String arch : List.of("sd15", "sd21", "sdxl")) {
            ModelConfig preset = ModelConfig.preset(arch);
            Path f = TinyConfigs.sparseCheckpoint(dir.resolve(arch + ".safetensors"), CheckpointKeys.of(preset));
            try (Checkpoint ckpt = Checkpoint.open(f)) {
                assertArchitecture(preset, ckpt.config());
            }
        }
    }

    @Test
    void realNumbersSpelledOut() throws Exception {
        Path f = TinyConfigs.sparseCheckpoint(dir.resolve("xl.safetensors"), CheckpointKeys.of(ModelConfig.preset("sdxl")));
        try (Checkpoint ckpt = Checkpoint.open(f)) {
            ModelConfig.UNetSpec u = ckpt.config().unet();
            assertEquals(320, u.modelChannels());
            assertEquals(List.of(1, 2, 4), u.channelMult());
            assertEquals(List.of(0, 2, 10), u.transformerDepth());
            assertEquals(10, u.transformerDepthMiddle());
            assertEquals(List.of(10, 10, 10, 2, 2, 2, 0, 0, 0), u.transformerDepthOutput());
            assertEquals(2048, u.contextDim());
            assertEquals(2816, u.admInChannels());
            assertEquals(20, u.heads(1280));
            assertEquals(List.of(768, 1280), ckpt.config().textEncoders().stream().map(t -> t.width()).toList());
            assertEquals(List.of(12, 32), ckpt.config().textEncoders().stream().map(t -> t.layers()).toList());
            assertEquals(1280, ckpt.config().textEncoders().get(1).projectionDim());
            assertEquals(Family.SDXL, ckpt.family());
        }
    }

    @Test
    void predictionHints() throws Exception {
        var specs = new java.util.ArrayList<>(CheckpointKeys.of(TinyConfigs.sd1()));
        specs.add(new CheckpointKeys.TensorSpec("v_pred", new long[] {}, CheckpointKeys.Init.ZERO));
        Path f = TinyConfigs.sparseCheckpoint(dir.resolve("v.safetensors"), specs);
        try (Checkpoint ckpt = Checkpoint.open(f)) {
            assertEquals(ModelConfig.Prediction.V, ckpt.config().prediction());
            assertEquals("'v_pred' key", ckpt.config().predictionSource());
            assertEquals("other", ckpt.config().components().getLast().component(), "v_pred belongs to no component");
        }
        try (SafeTensors src = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Path g = dir.resolve("meta.safetensors");
            jdiffusion.io.SafeTensorsWriter w = jdiffusion.io.SafeTensorsWriter.to(g)
                    .metadata(Map.of("modelspec.prediction_type", "v"));
            for (String n : src.names()) {
                w.addFrom(src, n, n, DType.F16);
            }
            w.write();
            try (Checkpoint ckpt = Checkpoint.open(g)) {
                assertEquals(ModelConfig.Prediction.V, ckpt.config().prediction());
            }
        }
    }

    @Test
    void sd2VPredictionByComfyUisLayerNormRule() throws Exception {
        for (double std : new double[] {0.2, 0.05}) {
            Path f = TinyConfigs.sparseCheckpoint(dir.resolve("sd21-" + std + ".safetensors"),
                    CheckpointKeys.of(ModelConfig.preset("sd21")));
            String probe = "model.diffusion_model." + ModelDetector.SD2_V_PROBE;
            long at;
            int n;
            try (SafeTensors st = SafeTensors.open(f)) {
                long dataStart = java.nio.file.Files.size(f)
                        - st.tensors().values().stream().mapToLong(TensorInfo::end).max().orElseThrow();
                at = dataStart + st.info(probe).begin();
                n = (int) st.info(probe).numel();
            }
            java.util.Random rnd = new java.util.Random(3);
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(2 * n).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                v[i] = Float.float16ToFloat(Float.floatToFloat16((float) (rnd.nextGaussian() * std)));
                b.putShort(Float.floatToFloat16(v[i]));
            }
            try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(f.toFile(), "rw")) {
                raf.seek(at);
                raf.write(b.array());
            }
            try (Checkpoint ckpt = Checkpoint.open(f)) {
                assertEquals(Family.SD2, ckpt.family());
                assertEquals(ModelDetector.populationStd(v), ModelDetector.populationStd(ckpt.unet().get(ModelDetector.SD2_V_PROBE)), 0);
                assertEquals(std > 0.09 ? ModelConfig.Prediction.V : ModelConfig.Prediction.EPS, ckpt.config().prediction(),
                        ckpt.config().predictionSource());
                assertTrue(ckpt.config().predictionSource().contains("SD2 rule"), ckpt.config().predictionSource());
            }
        }
    }

    @Test
    void inpaintingUnetTakesNineInputChannels() throws Exception {
        ModelConfig sd15 = ModelConfig.preset("sd15");
        ModelConfig.UNetSpec u = sd15.unet();
        ModelConfig.UNetSpec inpaint = new ModelConfig.UNetSpec(9, 4, u.modelChannels(), u.channelMult(), u.numResBlocks(),
                u.transformerDepth(), u.transformerDepthMiddle(), u.transformerDepthOutput(), u.contextDim(), u.linearProj(),
                u.numHeads(), u.headDim(), 0, u.timeEmbedDim());
        ModelConfig c = new ModelConfig(Family.SD1, inpaint, sd15.vae(), sd15.textEncoders(), sd15.prediction(), "", List.of());
        Path f = TinyConfigs.sparseCheckpoint(dir.resolve("inpaint.safetensors"), CheckpointKeys.of(c));
        try (Checkpoint ckpt = Checkpoint.open(f)) {
            assertEquals(9, ckpt.config().unet().inChannels());
            assertEquals(4, ckpt.config().latentChannels());
        }
    }

    @Test
    void inconsistentPartsAreRejected() throws Exception {
        // an SD1 UNet with a context width that no SD1 text encoder of this file produces
        ModelConfig sd1 = TinyConfigs.sd1();
        ModelConfig.UNetSpec u = sd1.unet();
        ModelConfig.UNetSpec wide = new ModelConfig.UNetSpec(u.inChannels(), u.outChannels(), u.modelChannels(),
                u.channelMult(), u.numResBlocks(), u.transformerDepth(), u.transformerDepthMiddle(),
                u.transformerDepthOutput(), 96, u.linearProj(), u.numHeads(), u.headDim(), 0, u.timeEmbedDim());
        ModelConfig bad = new ModelConfig(Family.SD1, wide, sd1.vae(), sd1.textEncoders(), sd1.prediction(), "", List.of());
        Path f = TinyConfigs.sparseCheckpoint(dir.resolve("bad.safetensors"), CheckpointKeys.of(bad));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(f));
        assertTrue(e.getMessage().contains("context dim 96 does not match the text encoder output width 64"), e.getMessage());
    }
}
