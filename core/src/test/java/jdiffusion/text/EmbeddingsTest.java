package jdiffusion.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Embedding files, their lookup and listing, and {@code embedding:name} in ComfyUI's tokenization. */
class EmbeddingsTest {
    @TempDir
    Path dir;

    private static final ClipTokenizer TOK = ClipTokenizer.clipL();

    private Embeddings golden() {
        return Embeddings.folder(Golden.model("embeddings"));
    }

    @Test
    void listingReportsNameFileVectorsAndFamily() throws Exception {
        List<Embeddings.Info> list = Embeddings.list(Golden.model("embeddings"));
        assertEquals(List.of("tinyemb", "tinyemb", "tinyembxl"), list.stream().map(Embeddings.Info::name).toList());
        assertEquals(List.of("tinyemb.pt", "tinyemb.safetensors", "tinyembxl.safetensors"),
                list.stream().map(i -> i.file().getFileName().toString()).toList());
        assertEquals(List.of(2, 2, 2), list.stream().map(Embeddings.Info::vectors).toList());
        assertEquals("SDXL", list.get(2).family());
        assertEquals(Map.of("clip_g", 128, "clip_l", 64), list.get(2).widths());
        assertEquals(Map.of("string_to_param.*", 64), list.get(0).widths());
        assertEquals("unknown", list.get(1).family(), "width 64 is no real family");
        Files.writeString(dir.resolve("notes.txt"), "x");
        Files.writeString(dir.resolve("broken.pt"), "not a pickle");
        assertEquals(List.of(), Embeddings.list(dir));
    }

    @Test
    void comfyUiSearchOrderAndConfinement() throws Exception {
        Embeddings e = golden();
        assertEquals("tinyemb.safetensors", e.find("tinyemb").getFileName().toString(), ".safetensors before .pt");
        assertEquals("tinyemb.pt", e.find("tinyemb.pt").getFileName().toString());
        assertNull(e.find("../tiny-sd1-fp16.safetensors"));
        assertNull(e.find("../tiny-sd1-fp16"));
        assertNull(e.find("nothing"));
        assertNull(e.vectors("nothing", "clip_l"));
        // SDXL files: each encoder reads its own tensor
        assertEquals(64, e.vectors("tinyembxl", "clip_l")[0].length);
        assertEquals(128, e.vectors("tinyembxl", "clip_g")[0].length);
    }

    @Test
    void aCheckpointInTheFolderIsNoEmbedding() throws Exception {
        Files.createSymbolicLink(dir.resolve("big.safetensors"), Golden.model("tiny-sd1-fp16.safetensors"));
        assertEquals(List.of(), Embeddings.list(dir));
        IllegalArgumentException x = assertThrows(IllegalArgumentException.class,
                () -> Embeddings.folder(dir).vectors("big", "clip_l"));
        assertTrue(x.getMessage().contains("too large for an embedding"), x.getMessage());
    }

    @Test
    void aMaliciousPtIsRefusedWithAOneLineError() throws Exception {
        Files.copy(Golden.model("malicious.ckpt"), dir.resolve("evil.pt"));
        Embeddings e = Embeddings.folder(dir);
        IllegalArgumentException x = assertThrows(IllegalArgumentException.class,
                () -> TOK.encodeWeighted("a embedding:evil", ClipTokenizer.Grouping.SEGMENT, e.lookup("clip_l")));
        assertTrue(x.getMessage().contains("refused pickle global 'posix.system'"), x.getMessage());
        assertFalse(x.getMessage().contains("\n"));
    }

    private WeightedChunks tokens(String prompt) {
        return TOK.encodeWeighted(prompt, ClipTokenizer.Grouping.SEGMENT, golden().lookup("clip_l"));
    }

    private static int[] ids(String text) {
        return TOK.encode(text);
    }

    @Test
    void embeddingVectorsTakeSlotsAndKeepTheirWeights() {
        WeightedChunks c = tokens("(a embedding:tinyemb:1.2) cat");
        int[] a = ids("a");
        int[] cat = ids("cat");
        int[] row = c.ids()[0];
        assertEquals(a[0], row[1]);
        assertEquals(ClipTokenizer.VOCAB_SIZE, row[2]);
        assertEquals(ClipTokenizer.VOCAB_SIZE + 1, row[3]);
        assertEquals(cat[0], row[4]);
        assertEquals(ClipTokenizer.EOS, row[5]);
        assertEquals(1.2, c.weights()[0][2]);
        assertEquals(1.2, c.weights()[0][3]);
        assertEquals(1.0, c.weights()[0][4]);
        assertArrayEquals(golden().vectors("tinyemb", "clip_l")[1], c.vectors().get(1));
    }

    @Test
    void trailingCommasAndLeftoverWordsAreTextAgain() {
        int[] row = tokens("embedding:tinyemb, oil").ids()[0];
        int[] rest = ids(", oil");
        assertEquals(ClipTokenizer.VOCAB_SIZE, row[1]);
        assertEquals(ClipTokenizer.VOCAB_SIZE + 1, row[2]);
        assertArrayEquals(rest, java.util.Arrays.copyOfRange(row, 3, 3 + rest.length));
        // a name with an extension; text after it in the same piece
        int[] row2 = tokens("x\nembedding:tinyemb.pt hat").ids()[0];
        assertEquals(ClipTokenizer.VOCAB_SIZE, row2[2]);
        assertEquals(ids("hat")[0], row2[4]);
    }

    @Test
    void unknownEmbeddingsAreDroppedAndWithoutAFolderTheNameIsText() {
        int[] dropped = tokens("a embedding:missing cat").ids()[0];
        assertArrayEquals(new int[] {ClipTokenizer.BOS, ids("a")[0], ids("cat")[0], ClipTokenizer.EOS},
                java.util.Arrays.copyOf(dropped, 4));
        int[] text = TOK.encodeWeighted("a embedding:missing cat").ids()[0];
        int[] all = ids("a embedding:missing cat");
        assertArrayEquals(all, java.util.Arrays.copyOfRange(text, 1, 1 + all.length), "no folder: the name is text");
        // only after a space or newline: a tab does not start an embedding (ComfyUI's split)
        WeightedChunks tab = tokens("a\tembedding:tinyemb");
        assertFalse(tab.hasVectors());
    }

    @Test
    void a1111BareNamesBecomeComfyUiReferences() {
        Embeddings e = golden().a1111Names(true);
        assertEquals("a photo of embedding:tinyemb, oil", e.rewriteA1111("a photo of tinyemb, oil"));
        assertEquals("embedding:tinyembxl", e.rewriteA1111("TINYEMBXL"));
        assertEquals("( embedding:tinyemb:1.2)", e.rewriteA1111("(tinyemb:1.2)"));
        assertEquals("tinyembs and xtinyemb", e.rewriteA1111("tinyembs and xtinyemb"), "whole words only");
        assertEquals("embedding:tinyemb", e.rewriteA1111("embedding:tinyemb"), "already a reference");
        assertEquals("a tinyemb", golden().rewriteA1111("a tinyemb"), "off unless asked for");
        WeightedChunks c = TOK.encodeWeighted(e.rewriteA1111("a tinyemb cat"), ClipTokenizer.Grouping.SEGMENT, e.lookup("clip_l"));
        assertEquals(2, c.vectors().size());
    }
}
