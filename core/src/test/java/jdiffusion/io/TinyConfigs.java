package jdiffusion.io;

import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import jdiffusion.io.CheckpointKeys.Init;
import jdiffusion.io.CheckpointKeys.TensorSpec;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.model.Family;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.ModelConfig.Prediction;
import jdiffusion.model.ModelConfig.TextEncoderSpec;
import jdiffusion.model.ModelConfig.UNetSpec;
import jdiffusion.model.ModelConfig.VaeSpec;

/** The tiny golden models' architectures, written down from the golden README (not detected). */
public final class TinyConfigs {
    private TinyConfigs() {
    }

    static final VaeSpec TINY_VAE = new VaeSpec(32, List.of(1, 2, 2, 2), 2, 3, 4, 3);

    public static ModelConfig sd1() {
        List<Integer> depth = List.of(1, 1, 1, 0);
        UNetSpec unet = new UNetSpec(4, 4, 32, List.of(1, 2, 4, 4), 2, depth, 1, UNetSpec.outputDepths(depth, 2), 64,
                false, 8, -1, 0, 128);
        TextEncoderSpec te = new TextEncoderSpec("clip_l", TextLayout.HF_CLIP, 64, 3, 1, 256, 49408, 77, 0, true, "quick_gelu");
        return new ModelConfig(Family.SD1, unet, TINY_VAE, List.of(te), Prediction.EPS, "test", List.of());
    }

    public static ModelConfig sdxl() {
        List<Integer> depth = List.of(0, 1, 2);
        UNetSpec unet = new UNetSpec(4, 4, 32, List.of(1, 2, 4), 2, depth, 2, UNetSpec.outputDepths(depth, 2), 192,
                true, -1, 64, 1664, 128);
        TextEncoderSpec te1 = new TextEncoderSpec("clip_l", TextLayout.HF_CLIP, 64, 3, 1, 256, 49408, 77, 0, false, "quick_gelu");
        TextEncoderSpec te2 = new TextEncoderSpec("clip_g", TextLayout.OPEN_CLIP, 128, 3, 2, 512, 49408, 77, 128, false, "gelu");
        return new ModelConfig(Family.SDXL, unet, TINY_VAE, List.of(te1, te2), Prediction.EPS, "test", List.of());
    }

    /**
     * A safetensors file with the tensors' headers (F16) but no data written: the data section is a sparse hole, so
     * a full-size checkpoint's structure costs a few hundred KB of disk.
     */
    public static Path sparseCheckpoint(Path file, List<TensorSpec> tensors) throws Exception {
        StringBuilder json = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long offset = 0;
        for (TensorSpec t : tensors) {
            String dtype = t.init() == Init.POSITION_IDS ? "I64" : "F16";
            long bytes = t.numel() * (dtype.equals("I64") ? 8 : 2);
            json.append(",\"").append(t.name()).append("\":{\"dtype\":\"").append(dtype).append("\",\"shape\":[");
            for (int i = 0; i < t.shape().length; i++) {
                json.append(i == 0 ? "" : ",").append(t.shape()[i]);
            }
            json.append("],\"data_offsets\":[").append(offset).append(',').append(offset + bytes).append("]}");
            offset += bytes;
        }
        json.append('}');
        byte[] h = json.toString().getBytes(StandardCharsets.UTF_8);
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.write(java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
            f.write(h);
            f.setLength(8 + h.length + offset);
        }
        return file;
    }
}
