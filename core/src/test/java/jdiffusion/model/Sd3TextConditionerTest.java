package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.text.T5Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** SD3 conditioning structure: ComfyUI chunking and empty handling, separate T5 files, release, bad input. */
class Sd3TextConditionerTest {
    @TempDir
    Path tmp;

    private static SafeTensors tiny() throws Exception {
        return SafeTensors.open(Golden.model("tiny-sd35-fp16.safetensors"));
    }

    private static Sd3TextConditioner.Options options(int width) {
        return Sd3TextGoldenTest.options(width);
    }

    @Test
    void comfyEncodesTheSameTextForEveryEncoderByDefault() throws Exception {
        try (SafeTensors ckpt = tiny(); Sd3TextConditioner tc = Sd3TextConditioner.load(ckpt, null, true, options(0))) {
            String p = "a red fox, (snow:1.2), watercolor";
            Conditioning a = tc.encodeComfy(p);
            Conditioning b = tc.encodeComfy(p, p, p, false);
            assertArrayEquals(a.context(), b.context());
            assertArrayEquals(a.pooled(), b.pooled());
            assertEquals(77 + 77, a.tokens());
            // a weight of exactly 1 changes nothing in the CLIP rows (T5 differs: ComfyUI tokenizes each weighted
            // run of text on its own, so T5 sees "▁," where the plain prompt has ",")
            Conditioning plain = tc.encodeComfy("a red fox, snow, watercolor");
            Conditioning one = tc.encodeComfy("a red fox, (snow:1.0), watercolor");
            assertArrayEquals(Arrays.copyOf(plain.context(), 77 * 64), Arrays.copyOf(one.context(), 77 * 64));
            assertArrayEquals(plain.pooled(), one.pooled());
            assertFalse(Arrays.equals(T5Tokenizer.get().encodeMinLength("a red fox, snow, watercolor", 77),
                    Sd3TextConditioner.comfyT5Tokens("a red fox, (snow:1.0), watercolor").ids()[0]));
            assertFalse(Arrays.equals(plain.context(), a.context()));
            assertArrayEquals(Arrays.copyOf(plain.context(), 64), Arrays.copyOf(a.context(), 64), "the start token weighs 1");
        }
    }

    @Test
    void longPromptsChunkTheClipsAndNeverTruncateT5() throws Exception {
        String longPrompt = "a very long prompt that goes on and on, ".repeat(12);
        int t5Tokens = T5Tokenizer.get().encode(longPrompt).length + 1;
        assertTrue(t5Tokens > 77);
        try (SafeTensors ckpt = tiny(); Sd3TextConditioner tc = Sd3TextConditioner.load(ckpt, null, true, options(0))) {
            Conditioning c = tc.encodeComfy(longPrompt);
            assertEquals(77 * 2 + t5Tokens, c.tokens(), "two CLIP chunks, then every T5 token");
            Conditioning d = tc.encode(longPrompt, 256);
            assertEquals(77 + 256, d.tokens(), "diffusers truncates");
        }
    }

    @Test
    void emptyPaddingNone() throws Exception {
        try (SafeTensors ckpt = tiny(); Sd3TextConditioner tc = Sd3TextConditioner.load(ckpt, null, true, options(0));
             Sd3TextConditioner noT5 = Sd3TextConditioner.load(ckpt, null, false, options(64))) {
            Conditioning onlyT5 = tc.encodeComfy("", "", "", true);
            assertEquals(1, onlyT5.tokens(), "T5 alone encodes its end token");
            assertArrayEquals(tc.t5().forward(new int[] {T5Tokenizer.EOS}, 1), onlyT5.context());
            assertArrayEquals(new float[48], onlyT5.pooled());
            Conditioning nothing = noT5.encodeComfy("", "", "", true);
            assertEquals(77, nothing.tokens());
            assertArrayEquals(new float[77 * 64], nothing.context());
            // an empty CLIP-L text gets the empty prompt's chunk beside CLIP-G's
            Conditioning gOnly = tc.encodeComfy("", "a fox", "a fox", true);
            Conditioning emptyL = tc.encodeComfy("", "a fox", "a fox", false);
            assertArrayEquals(emptyL.context(), gOnly.context());
            assertEquals(77 + 77, gOnly.tokens());
            // without padding=none an empty text is encoded as ""
            Conditioning withoutT5Text = tc.encodeComfy("a fox", "a fox", "", false);
            assertEquals(77 + 77, withoutT5Text.tokens());
        }
    }

    @Test
    void separateT5FileGivesTheSameConditioning() throws Exception {
        Path t5 = tmp.resolve("t5xxl_tiny_fp16.safetensors");
        try (SafeTensors ckpt = tiny()) {
            SafeTensorsWriter w = SafeTensorsWriter.to(t5);
            String prefix = "text_encoders.t5xxl.transformer.";
            for (String n : ckpt.names()) {
                if (n.startsWith(prefix)) {
                    w.addFrom(ckpt, n, n.substring(prefix.length()), DType.F16);
                }
            }
            w.write();
            try (SafeTensors t5File = SafeTensors.open(t5);
                 Sd3TextConditioner own = Sd3TextConditioner.load(ckpt, null, true, options(0));
                 Sd3TextConditioner separate = Sd3TextConditioner.load(ckpt, t5File, true, options(0))) {
                assertTrue(separate.hasT5());
                Conditioning a = own.encode("a red fox");
                Conditioning b = separate.encode("a red fox");
                assertArrayEquals(a.context(), b.context());
                assertArrayEquals(a.pooled(), b.pooled());
            }
        }
    }

    /** The tensors of ckpt under prefix, renamed to newPrefix, as dtype. */
    private Path extract(SafeTensors ckpt, String prefix, String newPrefix, DType dtype, String name) throws Exception {
        Path out = tmp.resolve(name);
        SafeTensorsWriter w = SafeTensorsWriter.to(out);
        for (String n : ckpt.names()) {
            if (n.startsWith(prefix)) {
                w.addFrom(ckpt, n, newPrefix + n.substring(prefix.length()), dtype);
            }
        }
        w.write();
        return out;
    }

    @Test
    void separateClipAndT5FilesLikeTripleClipLoader() throws Exception {
        try (SafeTensors ckpt = tiny()) {
            Path l = extract(ckpt, "text_encoders.clip_l.transformer.", "", DType.F16, "clip_l.safetensors");
            Path g = extract(ckpt, "text_encoders.clip_g.transformer.", "", DType.F32, "clip_g.safetensors");
            Path t5 = extract(ckpt, "text_encoders.t5xxl.transformer.", "", DType.F16, "t5xxl.safetensors");
            try (SafeTensors lf = SafeTensors.open(l); SafeTensors gf = SafeTensors.open(g); SafeTensors tf = SafeTensors.open(t5);
                 Sd3TextConditioner own = Sd3TextConditioner.load(ckpt, null, true, options(0));
                 Sd3TextConditioner separate = Sd3TextConditioner.loadSeparate(lf, gf, tf, options(0));
                 Sd3TextConditioner noT5 = Sd3TextConditioner.loadSeparate(lf, gf, null, options(64))) {
                Conditioning a = own.encodeComfy("a red fox");
                Conditioning b = separate.encodeComfy("a red fox");
                assertArrayEquals(a.context(), b.context());
                assertArrayEquals(a.pooled(), b.pooled());
                assertFalse(noT5.hasT5());
                assertEquals(77, noT5.encodeComfy("a red fox").tokens());
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> Sd3TextConditioner.loadSeparate(tf, gf, null, options(64)));
                assertTrue(e.getMessage().contains("no CLIP text encoder"), e.getMessage());
            }
        }
    }

    @Test
    void closeReleasesTheEncoders() throws Exception {
        try (SafeTensors ckpt = tiny()) {
            Sd3TextConditioner tc = Sd3TextConditioner.load(ckpt, null, true, options(0));
            tc.encode("x");
            tc.close();
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> tc.encode("x"));
            assertTrue(e.getMessage().contains("released"), e.getMessage());
            tc.close();
        }
    }

    @Test
    void badInputFailsWithAClearMessage() throws Exception {
        try (SafeTensors ckpt = tiny()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Sd3TextConditioner.load(ckpt, null, true, new Sd3TextConditioner.Options(0, 0, 0)));
            assertTrue(e.getMessage().contains("not a multiple of the head size 64"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Sd3TextConditioner.load(ckpt, null, true, options(128)));
            assertTrue(e.getMessage().contains("differs from T5's d_model 64"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Sd3TextConditioner.load(ckpt, null, false, options(32)));
            assertTrue(e.getMessage().contains("exceeds the context width 32"), e.getMessage());
        }
        try (SafeTensors sd1 = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Sd3TextConditioner.load(sd1, null, true, Sd3TextConditioner.Options.DEFAULT));
            assertTrue(e.getMessage().contains("no SD3 text encoders"), e.getMessage());
        }
    }
}
