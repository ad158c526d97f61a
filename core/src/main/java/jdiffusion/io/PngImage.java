package jdiffusion.io;

/**
 * An 8-bit RGB image, pixels interleaved row by row (r, g, b, r, g, b, ...), the form pipelines save and load.
 *
 * @param width  pixels per row
 * @param height rows
 * @param rgb    width * height * 3 bytes, unsigned values stored in Java bytes
 */
public record PngImage(int width, int height, byte[] rgb) {
    public PngImage {
        if (width <= 0 || height <= 0) {
            throw new IllegalArgumentException("image size must be positive, got " + width + "x" + height);
        }
        if (rgb.length != (long) width * height * 3) {
            throw new IllegalArgumentException("RGB buffer holds " + rgb.length + " bytes, " + width + "x" + height
                    + " needs " + (long) width * height * 3);
        }
    }

    /** The unsigned value 0..255 of channel c (0 r, 1 g, 2 b) at (x, y). */
    public int value(int x, int y, int c) {
        return rgb[(y * width + x) * 3 + c] & 0xFF;
    }

    /**
     * Converts a decoded image in [0,1], NCHW floats of one batch item, to 8-bit RGB. diffusers rounds
     * ({@code round(v * 255)}), ComfyUI's SaveImage truncates ({@code (uint8)(255 * v)}); both clamp first.
     */
    public static PngImage fromUnitFloats(float[] nchw, int item, int height, int width, boolean round) {
        int plane = height * width;
        int base = item * 3 * plane;
        byte[] rgb = new byte[plane * 3];
        for (int p = 0; p < plane; p++) {
            for (int c = 0; c < 3; c++) {
                float v = Math.min(1f, Math.max(0f, nchw[base + c * plane + p]));
                float scaled = 255f * v;
                int level = round ? (int) Math.rint(scaled) : (int) scaled;
                rgb[p * 3 + c] = (byte) Math.min(255, Math.max(0, level));
            }
        }
        return new PngImage(width, height, rgb);
    }

    /** Pixels as NCHW floats in [-1, 1] ({@code v / 255 * 2 - 1}), the VAE encoder's input. */
    public float[] toSignedFloats() {
        int plane = width * height;
        float[] out = new float[3 * plane];
        for (int p = 0; p < plane; p++) {
            for (int c = 0; c < 3; c++) {
                float unit = (rgb[p * 3 + c] & 0xFF) / 255f;
                out[c * plane + p] = unit * 2f - 1f;
            }
        }
        return out;
    }
}
