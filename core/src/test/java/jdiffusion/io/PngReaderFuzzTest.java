package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Map;
import javax.imageio.ImageIO;

/**
 * Fuzz target (Jazzer) for the PNG reader: the text-chunk parser ({@link PngReader#text(byte[])}) either returns
 * keyword/text pairs or throws a one-line IOException; a decodable image converts to RGB bytes of the right size.
 * Seeds: {@code PngReaderFuzzTestInputs/png/}.
 */
class PngReaderFuzzTest {
    static {
        ImageIO.setUseCache(false); // no temporary file per decode
    }

    @FuzzTest(maxDuration = "5s")
    @DictionaryEntries({"IHDR", "IDAT", "IEND", "tEXt", "zTXt", "iTXt", "parameters", "prompt", "workflow"})
    void png(byte[] input) {
        try {
            Map<String, String> text = PngReader.text(input);
            text.forEach((k, v) -> assertTrue(k != null && v != null));
        } catch (IOException expected) {
            String m = expected.getMessage();
            assertTrue(m != null && !m.contains("\n"), "one line: " + m);
        }
        if (input.length > 1 << 16) {
            return; // the JDK's decoder is not the target; keep its share of the time small
        }
        BufferedImage image;
        try (javax.imageio.stream.ImageInputStream in = ImageIO.createImageInputStream(
                new ByteArrayInputStream(input))) {
            var readers = ImageIO.getImageReaders(in);
            if (!readers.hasNext()) {
                return;
            }
            javax.imageio.ImageReader r = readers.next();
            try {
                r.setInput(in);
                if ((long) r.getWidth(0) * r.getHeight(0) > 1 << 16) {
                    return; // sized from the header first, as the server does: no huge allocation
                }
                image = r.read(0);
            } finally {
                r.dispose();
            }
        } catch (IOException | RuntimeException decoderRefused) {
            return;
        }
        if (image == null) {
            return;
        }
        PngImage rgb = PngReader.toRgb(image);
        assertEquals(image.getWidth(), rgb.width());
        assertEquals(image.getHeight(), rgb.height());
    }
}
