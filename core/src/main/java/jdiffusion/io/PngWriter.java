package jdiffusion.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.Deflater;
import java.util.zip.DeflaterOutputStream;

/**
 * Writes 8-bit RGB PNGs with text chunks: Latin-1 text as {@code tEXt}, anything else as uncompressed UTF-8
 * {@code iTXt} (A1111 and ComfyUI readers accept both). Files are written to a temporary sibling and moved into
 * place, so a reader never sees half an image, and an existing file is never replaced.
 */
public final class PngWriter {
    private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

    private PngWriter() {
    }

    /** The PNG bytes of an image with its text chunks (keys in map order). */
    public static byte[] encode(PngImage image, Map<String, String> text) {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            out.write(SIGNATURE);
            chunk(out, "IHDR", header(image));
            for (Map.Entry<String, String> e : text.entrySet()) {
                textChunk(out, e.getKey(), e.getValue());
            }
            chunk(out, "IDAT", pixels(image));
            chunk(out, "IEND", new byte[0]);
            return out.toByteArray();
        } catch (IOException e) {
            throw new IllegalStateException("in-memory PNG encoding failed", e); // a ByteArrayOutputStream cannot fail
        }
    }

    /**
     * Writes the image to {@code target}, or, when that file exists, to the first free {@code name_1.png},
     * {@code name_2.png}, ... Returns the path written. Failures name the file and the reason.
     */
    public static Path writeNew(Path target, PngImage image, Map<String, String> text) throws IOException {
        return writeNewFile(target, encode(image, text));
    }

    /** Writes bytes to a fresh file next to target (counter suffix when taken), via a temp file and an atomic move. */
    public static Path writeNewFile(Path target, byte[] bytes) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        Path tmp;
        try {
            tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", ".part");
        } catch (NoSuchFileException e) {
            throw new IOException("output folder does not exist: " + dir);
        } catch (AccessDeniedException e) {
            throw new IOException("output folder is not writable: " + dir);
        }
        try {
            readableByAll(tmp);
            Files.write(tmp, bytes);
            for (int counter = 0; ; counter++) {
                Path candidate = counter == 0 ? target : withCounter(target, counter);
                if (Files.exists(candidate)) {
                    continue;
                }
                try {
                    // the link is atomic and fails when the name was taken meanwhile, unlike a plain move
                    Files.createLink(candidate, tmp);
                    return candidate;
                } catch (FileAlreadyExistsException raced) {
                    // another writer took this name between the check and the link: try the next counter
                } catch (UnsupportedOperationException | IOException noLinks) {
                    if (Files.exists(candidate)) {
                        continue;
                    }
                    Files.move(tmp, candidate, StandardCopyOption.ATOMIC_MOVE);
                    return candidate;
                }
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** Temp files are created owner-only; an image is an ordinary file (rw-r--r--, where POSIX permissions exist). */
    private static void readableByAll(Path tmp) throws IOException {
        try {
            Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        } catch (UnsupportedOperationException notPosix) {
            // Windows: the temp file already has the folder's default access
        }
    }

    /** {@code dir/name.png} -> {@code dir/name_N.png} (the extension kept; none added when there was none). */
    public static Path withCounter(Path target, int counter) {
        String name = target.getFileName().toString();
        int dot = name.lastIndexOf('.');
        String stem = dot > 0 ? name.substring(0, dot) : name;
        String ext = dot > 0 ? name.substring(dot) : "";
        return target.resolveSibling(stem + "_" + counter + ext);
    }

    /** Several images at once: all are encoded first, so an encoding problem writes nothing. */
    public static List<Path> writeAllNew(List<Path> targets, List<PngImage> images, Map<String, String> text)
            throws IOException {
        List<byte[]> encoded = new ArrayList<>();
        for (PngImage image : images) {
            encoded.add(encode(image, text));
        }
        List<Path> written = new ArrayList<>();
        for (int i = 0; i < encoded.size(); i++) {
            written.add(writeNewFile(targets.get(i), encoded.get(i)));
        }
        return written;
    }

    private static byte[] header(PngImage image) {
        byte[] h = new byte[13];
        putInt(h, 0, image.width());
        putInt(h, 4, image.height());
        h[8] = 8; // bit depth
        h[9] = 2; // colour type: truecolour RGB
        // compression, filter and interlace methods: 0
        return h;
    }

    /** Scanlines with filter type Sub, which shrinks smooth images well at no real cost. */
    private static byte[] pixels(PngImage image) throws IOException {
        int stride = image.width() * 3;
        byte[] rgb = image.rgb();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        Deflater deflater = new Deflater(6);
        try (DeflaterOutputStream z = new DeflaterOutputStream(buf, deflater)) {
            byte[] line = new byte[stride + 1];
            line[0] = 1; // Sub
            for (int y = 0; y < image.height(); y++) {
                int row = y * stride;
                for (int i = 0; i < stride; i++) {
                    int left = i >= 3 ? rgb[row + i - 3] : 0;
                    line[i + 1] = (byte) (rgb[row + i] - left);
                }
                z.write(line);
            }
        } finally {
            deflater.end();
        }
        return buf.toByteArray();
    }

    private static void textChunk(OutputStream out, String key, String value) throws IOException {
        if (key.isEmpty() || key.length() > 79 || !isLatin1(key) || key.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("PNG text key must be 1-79 Latin-1 characters: '" + key + "'");
        }
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.write(key.getBytes(StandardCharsets.ISO_8859_1));
        body.write(0);
        if (isLatin1(value) && value.indexOf('\0') < 0) {
            body.write(value.getBytes(StandardCharsets.ISO_8859_1));
            chunk(out, "tEXt", body.toByteArray());
        } else {
            body.write(new byte[] {0, 0}); // not compressed, method 0
            body.write(0); // empty language tag
            body.write(0); // empty translated keyword
            body.write(value.getBytes(StandardCharsets.UTF_8));
            chunk(out, "iTXt", body.toByteArray());
        }
    }

    private static boolean isLatin1(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) > 0xFF) {
                return false;
            }
        }
        return true;
    }

    private static void chunk(OutputStream out, String type, byte[] data) throws IOException {
        byte[] len = new byte[4];
        putInt(len, 0, data.length);
        out.write(len);
        byte[] typeBytes = type.getBytes(StandardCharsets.US_ASCII);
        out.write(typeBytes);
        out.write(data);
        CRC32 crc = new CRC32();
        crc.update(typeBytes);
        crc.update(data);
        byte[] c = new byte[4];
        putInt(c, 0, (int) crc.getValue());
        out.write(c);
    }

    private static void putInt(byte[] b, int at, int v) {
        b[at] = (byte) (v >>> 24);
        b[at + 1] = (byte) (v >>> 16);
        b[at + 2] = (byte) (v >>> 8);
        b[at + 3] = (byte) v;
    }
}
