package jdiffusion.pipeline;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import jdiffusion.io.PngWriter;

/**
 * {@code --save-latent}: a safetensors file with one F32 tensor {@code latent} [B,4,h,w] in the space the UNet
 * works in. Written via a temporary file and never over an existing one (a counter is added, as for images).
 */
public final class LatentFile {
    private LatentFile() {
    }

    /** Writes the latent; returns the path written (target, or target_N.safetensors when taken). */
    public static Path write(Path target, float[] latent, int[] shape, Map<String, String> metadata)
            throws IOException {
        long numel = 1;
        for (int d : shape) {
            numel *= d;
        }
        if (numel != latent.length) {
            throw new IllegalArgumentException("latent has " + latent.length + " values, shape needs " + numel);
        }
        return PngWriter.writeNewFile(target, encode(latent, shape, metadata));
    }

    static byte[] encode(float[] latent, int[] shape, Map<String, String> metadata) {
        StringBuilder header = new StringBuilder("{");
        if (!metadata.isEmpty()) {
            header.append("\"__metadata__\":{");
            boolean first = true;
            for (Map.Entry<String, String> e : metadata.entrySet()) {
                header.append(first ? "" : ",").append(quote(e.getKey())).append(':').append(quote(e.getValue()));
                first = false;
            }
            header.append("},");
        }
        header.append("\"latent\":{\"dtype\":\"F32\",\"shape\":[");
        for (int i = 0; i < shape.length; i++) {
            header.append(i == 0 ? "" : ",").append(shape[i]);
        }
        header.append("],\"data_offsets\":[0,").append(4L * latent.length).append("]}}");
        byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8; // the data section starts 8-byte aligned
        ByteBuffer buf = ByteBuffer.allocate(8 + padded + 4 * latent.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(padded);
        buf.put(json);
        for (int i = json.length; i < padded; i++) {
            buf.put((byte) ' ');
        }
        for (float v : latent) {
            buf.putFloat(v);
        }
        return buf.array();
    }

    private static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        return sb.append('"').toString();
    }
}
