package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import javax.imageio.ImageIO;
import jdiffusion.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PngRoundTripTest {
    /** Some manifests hold -Infinity (log of a zero sigma), which strict JSON rejects. */
    private static final com.fasterxml.jackson.databind.ObjectMapper LENIENT = new com.fasterxml.jackson.databind.ObjectMapper()
            .enable(com.fasterxml.jackson.core.json.JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());

    @TempDir
    Path dir;

    private static PngImage randomImage(int w, int h, long seed) {
        byte[] rgb = new byte[w * h * 3];
        new Random(seed).nextBytes(rgb);
        return new PngImage(w, h, rgb);
    }

    @Test
    void pixelsSurviveOurWriterAndImageIoReader() throws IOException {
        PngImage img = randomImage(37, 19, 1);
        Path p = PngWriter.writeNew(dir.resolve("a.png"), img, Map.of());
        BufferedImage back = ImageIO.read(p.toFile());
        assertEquals(37, back.getWidth());
        assertEquals(19, back.getHeight());
        for (int y = 0; y < 19; y++) {
            for (int x = 0; x < 37; x++) {
                int argb = back.getRGB(x, y);
                assertEquals(img.value(x, y, 0), (argb >> 16) & 0xFF);
                assertEquals(img.value(x, y, 1), (argb >> 8) & 0xFF);
                assertEquals(img.value(x, y, 2), argb & 0xFF);
            }
        }
        assertArrayEquals(img.rgb(), PngReader.read(p).rgb());
    }

    @Test
    void textChunksLatin1AndUtf8() throws IOException {
        Map<String, String> text = new LinkedHashMap<>();
        text.put("parameters", "a cat, café\nNegative prompt: blurry\nSteps: 4");
        text.put("prompt", "{\"3\": {\"inputs\": {\"text\": \"猫 🐱\"}}}");
        byte[] png = PngWriter.encode(randomImage(8, 8, 2), text);
        assertEquals(text, PngReader.text(png));
        String raw = new String(png, java.nio.charset.StandardCharsets.ISO_8859_1);
        assertTrue(raw.contains("tEXtparameters"), "Latin-1 text goes to tEXt");
        assertTrue(raw.contains("iTXtprompt"), "non-Latin-1 text goes to iTXt");
        // ImageIO's own PNG reader must accept the chunks as well
        assertEquals(8, ImageIO.read(new java.io.ByteArrayInputStream(png)).getWidth());
    }

    @Test
    void neverOverwritesAndLeavesNoTempFiles() throws IOException {
        Path target = dir.resolve("out.png");
        Path first = PngWriter.writeNew(target, randomImage(4, 4, 3), Map.of());
        byte[] firstBytes = Files.readAllBytes(first);
        Path second = PngWriter.writeNew(target, randomImage(4, 4, 4), Map.of());
        Path third = PngWriter.writeNew(target, randomImage(4, 4, 5), Map.of());
        assertEquals(target, first);
        assertEquals(dir.resolve("out_1.png"), second);
        assertEquals(dir.resolve("out_2.png"), third);
        assertArrayEquals(firstBytes, Files.readAllBytes(first));
        try (var s = Files.list(dir)) {
            assertEquals(3, s.count(), "only the three images, no temporary file left behind");
        }
    }

    @Test
    void missingFolderIsAClearError() {
        IOException e = assertThrows(IOException.class,
                () -> PngWriter.writeNew(dir.resolve("nope/x.png"), randomImage(2, 2, 6), Map.of()));
        assertTrue(e.getMessage().contains("does not exist") && e.getMessage().contains("nope"), e.getMessage());
    }

    @Test
    void readsGreyPaletteAndRgbaLikePilConvertRgb() throws IOException {
        BufferedImage grey = new BufferedImage(5, 3, BufferedImage.TYPE_BYTE_GRAY);
        grey.getRaster().setSample(2, 1, 0, 77);
        ImageIO.write(grey, "png", dir.resolve("g.png").toFile());
        PngImage g = PngReader.read(dir.resolve("g.png"));
        assertEquals(77, g.value(2, 1, 0));
        assertEquals(77, g.value(2, 1, 1));
        assertEquals(77, g.value(2, 1, 2));
        assertEquals(0, g.value(0, 0, 0));

        byte[] r = {10, (byte) 200};
        byte[] gg = {20, (byte) 150};
        byte[] b = {30, (byte) 100};
        BufferedImage pal = new BufferedImage(2, 2, BufferedImage.TYPE_BYTE_BINARY, new IndexColorModel(1, 2, r, gg, b));
        pal.getRaster().setSample(1, 1, 0, 1);
        ImageIO.write(pal, "png", dir.resolve("p.png").toFile());
        PngImage p = PngReader.read(dir.resolve("p.png"));
        assertEquals(10, p.value(0, 0, 0));
        assertEquals(200, p.value(1, 1, 0));
        assertEquals(150, p.value(1, 1, 1));
        assertEquals(100, p.value(1, 1, 2));

        BufferedImage rgba = new BufferedImage(2, 1, BufferedImage.TYPE_INT_ARGB);
        rgba.setRGB(0, 0, 0x00_11_22_33); // fully transparent: PIL keeps the colour and drops alpha
        rgba.setRGB(1, 0, 0x80_44_55_66);
        ImageIO.write(rgba, "png", dir.resolve("a.png").toFile());
        PngImage a = PngReader.read(dir.resolve("a.png"));
        assertEquals(0x11, a.value(0, 0, 0));
        assertEquals(0x33, a.value(0, 0, 2));
        assertEquals(0x44, a.value(1, 0, 0));
        assertEquals(0x66, a.value(1, 0, 2));
    }

    @Test
    void badImagesAreClearErrors() throws IOException {
        IOException missing = assertThrows(IOException.class, () -> PngReader.read(dir.resolve("missing.png")));
        assertTrue(missing.getMessage().contains("not found"), missing.getMessage());
        Path junk = Files.writeString(dir.resolve("junk.png"), "this is not a png");
        IOException bad = assertThrows(IOException.class, () -> PngReader.read(junk));
        assertTrue(bad.getMessage().contains("junk.png"), bad.getMessage());
    }

    @Test
    void goldenInputImagesDecode() throws IOException {
        for (Path m : Golden.manifests("pipe_")) {
            Path png = m.resolveSibling(Golden.caseName(m) + ".png");
            if (!Files.exists(png)) {
                continue; // batch cases name their files .0/.1 in params.png.files
            }
            PngImage img = PngReader.read(png);
            var size = LENIENT.readTree(m.toFile()).path("params");
            int w = size.has("width") ? size.get("width").asInt() : size.path("call").path("width").asInt(img.width());
            assertEquals(w, img.width(), png.toString());
            // our own writer must reproduce the very same pixels
            assertArrayEquals(img.rgb(), PngReader.read(PngWriter.writeNew(dir.resolve("copy.png"), img, Map.of())).rgb());
        }
    }

    @Test
    void unitFloatsRoundOrTruncate() {
        float[] nchw = {0.5f, 1.2f, -0.1f, 0.999f, 0.001f, 0.002f}; // 3 channels x 2 pixels
        PngImage round = PngImage.fromUnitFloats(nchw, 0, 1, 2, true);
        PngImage trunc = PngImage.fromUnitFloats(nchw, 0, 1, 2, false);
        assertEquals(128, round.value(0, 0, 0));
        assertEquals(127, trunc.value(0, 0, 0));
        assertEquals(255, round.value(1, 0, 0));
        assertEquals(0, round.value(0, 0, 1));
        assertEquals(255, round.value(1, 0, 1));
        assertEquals(254, trunc.value(1, 0, 1));
        assertEquals(0, trunc.value(0, 0, 2));
        assertEquals(1, round.value(1, 0, 2));
    }
}
