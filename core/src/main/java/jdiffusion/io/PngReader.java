package jdiffusion.io;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.InflaterInputStream;
import javax.imageio.ImageIO;

/**
 * Reads images (any PNG: grey, grey+alpha, RGB, RGBA, palette; also other formats javax.imageio knows) as 8-bit RGB,
 * the way PIL's {@code convert("RGB")} does for ComfyUI's LoadImage and diffusers: alpha is dropped, grey is copied
 * to all three channels, 16-bit samples keep their high byte. And reads PNG text chunks back.
 */
public final class PngReader {
    private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

    private PngReader() {
    }

    /** Reads an image file; every failure is an IOException whose message names the file and the problem. */
    public static PngImage read(Path file) throws IOException {
        return toRgb(decode(file));
    }

    /**
     * An image's RGB and its alpha channel (PIL's {@code getchannel("A")}: width * height bytes), alpha null when
     * the image has none (a palette image's transparency counts as alpha).
     */
    public record Rgba(PngImage rgb, byte[] alpha) {
    }

    /** {@link #read} with the alpha channel. */
    public static Rgba readRgba(Path file) throws IOException {
        BufferedImage image = decode(file);
        byte[] alpha = null;
        if (image.getColorModel().hasAlpha()) {
            int w = image.getWidth();
            int h = image.getHeight();
            alpha = new byte[w * h];
            boolean indexed = image.getColorModel() instanceof IndexColorModel;
            Raster raster = image.getAlphaRaster();
            int shift = raster == null ? 0 : Math.max(0, raster.getSampleModel().getSampleSize(0) - 8);
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    alpha[y * w + x] = (byte) (indexed || raster == null ? image.getRGB(x, y) >>> 24
                            : raster.getSample(x, y, 0) >> shift);
                }
            }
        }
        return new Rgba(toRgb(image), alpha);
    }

    private static BufferedImage decode(Path file) throws IOException {
        if (!Files.exists(file)) {
            throw new IOException(file + ": image file not found");
        }
        if (Files.isDirectory(file)) {
            throw new IOException(file + ": is a directory, not an image");
        }
        if (!Files.isReadable(file)) {
            throw new IOException(file + ": image file is not readable (permission denied)");
        }
        RegularFiles.require(file);
        BufferedImage image;
        try (InputStream in = Files.newInputStream(file)) {
            image = ImageIO.read(in);
        } catch (IOException | RuntimeException e) {
            throw new IOException(file + ": cannot decode image (" + e.getMessage() + ")");
        }
        if (image == null) {
            throw new IOException(file + ": not a readable image (expected a PNG)");
        }
        return image;
    }

    /** Converts without colour management: sample values are kept as stored (no gamma or grey-space conversion). */
    static PngImage toRgb(BufferedImage image) {
        int w = image.getWidth();
        int h = image.getHeight();
        byte[] rgb = new byte[w * h * 3];
        if (image.getColorModel() instanceof IndexColorModel) {
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    putArgb(rgb, (y * w + x) * 3, image.getRGB(x, y));
                }
            }
            return new PngImage(w, h, rgb);
        }
        Raster raster = image.getRaster();
        int bands = raster.getNumBands();
        int bits = raster.getSampleModel().getSampleSize(0);
        int shift = Math.max(0, bits - 8);
        boolean grey = bands <= 2;
        int[] sample = new int[bands];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                raster.getPixel(x, y, sample);
                int at = (y * w + x) * 3;
                for (int c = 0; c < 3; c++) {
                    rgb[at + c] = (byte) (sample[grey ? 0 : c] >> shift);
                }
            }
        }
        return new PngImage(w, h, rgb);
    }

    private static void putArgb(byte[] rgb, int at, int argb) {
        rgb[at] = (byte) (argb >> 16);
        rgb[at + 1] = (byte) (argb >> 8);
        rgb[at + 2] = (byte) argb;
    }

    /** The text chunks (tEXt, zTXt, iTXt) of a PNG, keyword to text, in file order. */
    public static Map<String, String> text(Path file) throws IOException {
        RegularFiles.require(file);
        return text(Files.readAllBytes(file));
    }

    public static Map<String, String> text(byte[] png) throws IOException {
        for (int i = 0; i < SIGNATURE.length; i++) {
            if (png.length < 8 || png[i] != SIGNATURE[i]) {
                throw new IOException("not a PNG (bad signature)");
            }
        }
        Map<String, String> out = new LinkedHashMap<>();
        int at = 8;
        while (at + 12 <= png.length) {
            int len = readInt(png, at);
            String type = new String(png, at + 4, 4, StandardCharsets.US_ASCII);
            int data = at + 8;
            if (len < 0 || (long) data + len + 4 > png.length) { // long: a length near 2^31 must not wrap
                // the type is four raw bytes: shown printable, so the message stays one line
                throw new IOException("truncated PNG chunk " + type.replaceAll("[^\\x21-\\x7e]", "?"));
            }
            switch (type) {
                case "tEXt" -> putLatin1(out, png, data, len);
                case "zTXt" -> putCompressed(out, png, data, len);
                case "iTXt" -> putInternational(out, png, data, len);
                default -> { }
            }
            if (type.equals("IEND")) {
                break;
            }
            at = data + len + 4;
        }
        return out;
    }

    private static void putLatin1(Map<String, String> out, byte[] png, int data, int len) {
        int nul = indexOf(png, data, data + len);
        out.put(latin1(png, data, nul), latin1(png, nul + 1, data + len));
    }

    private static void putCompressed(Map<String, String> out, byte[] png, int data, int len) throws IOException {
        int nul = indexOf(png, data, data + len);
        if (nul + 2 > data + len) {
            throw new IOException("malformed zTXt chunk (no compression method)");
        }
        byte[] text = inflate(png, nul + 2, data + len);
        out.put(latin1(png, data, nul), new String(text, StandardCharsets.ISO_8859_1));
    }

    private static void putInternational(Map<String, String> out, byte[] png, int data, int len) throws IOException {
        int end = data + len;
        int keyEnd = indexOf(png, data, end);
        if (keyEnd + 3 > end) {
            throw new IOException("malformed iTXt chunk (no room for its flags)");
        }
        boolean compressed = png[keyEnd + 1] != 0;
        int langEnd = indexOf(png, keyEnd + 3, end);
        int translatedEnd = indexOf(png, Math.min(langEnd + 1, end), end);
        int textStart = Math.min(translatedEnd + 1, end);
        byte[] text = compressed ? inflate(png, textStart, end) : java.util.Arrays.copyOfRange(png, textStart, end);
        out.put(latin1(png, data, keyEnd), new String(text, StandardCharsets.UTF_8));
    }

    /** The most text one compressed chunk may inflate to (a small chunk can be a decompression bomb). */
    static final int MAX_TEXT_CHUNK = 16 << 20;

    private static byte[] inflate(byte[] png, int from, int to) throws IOException {
        try (InflaterInputStream z = new InflaterInputStream(new ByteArrayInputStream(png, from, to - from))) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            for (int n; (n = z.read(buf)) > 0; ) {
                out.write(buf, 0, n);
                if (out.size() > MAX_TEXT_CHUNK) {
                    throw new IOException("compressed text chunk inflates past " + MAX_TEXT_CHUNK + " bytes");
                }
            }
            return out.toByteArray();
        } catch (java.util.zip.ZipException e) {
            throw new IOException("bad compressed text chunk (" + e.getMessage() + ")");
        }
    }

    private static int indexOf(byte[] b, int from, int to) {
        for (int i = from; i < to; i++) {
            if (b[i] == 0) {
                return i;
            }
        }
        return to;
    }

    private static String latin1(byte[] b, int from, int to) {
        return new String(b, from, Math.max(0, to - from), StandardCharsets.ISO_8859_1);
    }

    private static int readInt(byte[] b, int at) {
        return (b[at] & 0xFF) << 24 | (b[at + 1] & 0xFF) << 16 | (b[at + 2] & 0xFF) << 8 | (b[at + 3] & 0xFF);
    }
}
