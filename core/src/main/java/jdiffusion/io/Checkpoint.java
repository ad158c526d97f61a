package jdiffusion.io;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import jdiffusion.io.CheckpointLayouts.Layout;
import jdiffusion.io.CheckpointLayouts.TextEncoderSlot;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.model.Family;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.ModelDetector;

/**
 * A single-file Stable Diffusion checkpoint (SD1, SD2 or SDXL layout), memory-mapped, its components presented under
 * canonical names: UNet and VAE in original LDM names, text encoders in HuggingFace CLIP names (OpenCLIP towers
 * through {@link OpenClipWeights}). Opening reads only the header; tensor data is read when a model asks for it.
 *
 * <pre>{@code
 * try (Checkpoint ckpt = Checkpoint.open(Path.of("sd_xl_base_1.0.safetensors"))
 *         .withUnet(Path.of("sdxl_lightning_4step_unet.safetensors"))) {
 *     ModelConfig config = ckpt.config();
 *     Weights unet = ckpt.unet();
 * }
 * }</pre>
 */
public final class Checkpoint implements AutoCloseable {
    /** One text encoder: where it sits in the file and its tensors in the file's own (raw) naming. */
    public record TextEncoderPart(TextEncoderSlot slot, MappedWeights raw) {
        /** The tensors under HF CLIP names. */
        public Weights weights() {
            return slot.layout() == TextLayout.OPEN_CLIP ? OpenClipWeights.of(raw) : raw;
        }
    }

    private final Path path;
    private final SafeTensors file;
    private final Layout layout;
    private final MappedWeights unet;
    private final MappedWeights vae;
    private final List<TextEncoderPart> textEncoders;
    private final Path unetPath;
    private final Path vaePath;
    private final List<SafeTensors> owned;
    private final ModelConfig config;

    private Checkpoint(Path path, SafeTensors file, Layout layout, MappedWeights unet, MappedWeights vae,
                       List<TextEncoderPart> textEncoders, Path unetPath, Path vaePath, List<SafeTensors> owned)
            throws ModelFormatException {
        this.path = path;
        this.file = file;
        this.layout = layout;
        this.unet = unet;
        this.vae = vae;
        this.textEncoders = List.copyOf(textEncoders);
        this.unetPath = unetPath;
        this.vaePath = vaePath;
        this.owned = List.copyOf(owned);
        this.config = ModelDetector.detect(this);
    }

    /**
     * Opens a single-file checkpoint. A file that is not one (a LoRA, a UNet alone, a VAE) fails with a message
     * listing the parts it lacks.
     */
    public static Checkpoint open(Path path) throws ModelFormatException {
        SafeTensors file = SafeTensors.open(path);
        try {
            Layout layout = findLayout(file);
            List<TextEncoderPart> tes = new ArrayList<>();
            for (TextEncoderSlot slot : layout.textEncoders()) {
                MappedWeights raw = slot.layout() == TextLayout.HF_CLIP
                        ? CheckpointLayouts.hfClip(file, slot.prefix())
                        : MappedWeights.prefixed(file, slot.prefix());
                tes.add(new TextEncoderPart(slot, raw));
            }
            return new Checkpoint(path, file, layout, MappedWeights.prefixed(file, layout.unetPrefix()),
                    MappedWeights.prefixed(file, layout.vaePrefix()), tes, null, null, List.of(file));
        } catch (ModelFormatException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** The layout whose parts are all present; otherwise an error naming the parts that are missing. */
    private static Layout findLayout(SafeTensors file) throws ModelFormatException {
        Layout best = null;
        int bestScore = -1;
        for (Layout l : CheckpointLayouts.CHECKPOINTS) {
            int present = 0;
            for (TextEncoderSlot s : l.textEncoders()) {
                present += hasTextEncoder(file, s) ? 1 : 0;
            }
            if (present == l.textEncoders().size() && file.contains(l.unetMarker()) && file.contains(l.vaeMarker())) {
                return l;
            }
            int score = present * 2 - (present == 0 ? 0 : l.textEncoders().size() - present);
            if (present > 0 && score > bestScore) {
                best = l;
                bestScore = score;
            }
        }
        throw new ModelFormatException(missingMessage(file, best));
    }

    private static boolean hasTextEncoder(SafeTensors file, TextEncoderSlot s) {
        String marker = CheckpointLayouts.textMarker(s.layout());
        return file.contains(s.prefix() + marker)
                || (s.layout() == TextLayout.HF_CLIP && file.contains(s.prefix() + "embeddings.token_embedding.weight"));
    }

    private static String missingMessage(SafeTensors file, Layout guess) {
        if (ModelDetector.isSd3(file)) {
            return file.path() + ": an SD3 / SD3.5 checkpoint (MMDiT), not a UNet checkpoint; this operation needs"
                    + " SD1, SD2 or SDXL";
        }
        List<String> missing = new ArrayList<>();
        if (!file.contains(CheckpointLayouts.UNET_PREFIX + CheckpointLayouts.UNET_MARKER)) {
            missing.add("UNet (" + CheckpointLayouts.UNET_PREFIX + "*)");
        }
        if (!file.contains(CheckpointLayouts.VAE_PREFIX + CheckpointLayouts.VAE_MARKER)) {
            missing.add("VAE (" + CheckpointLayouts.VAE_PREFIX + "*)");
        }
        if (guess == null && file.contains(CheckpointLayouts.UNET_PREFIX + "label_emb.0.0.weight")) {
            guess = CheckpointLayouts.layout(Family.SDXL);
        }
        if (guess == null) {
            missing.add("text encoder (cond_stage_model.transformer.* for SD1, cond_stage_model.model.* for SD2, "
                    + "conditioner.embedders.* for SDXL)");
        } else {
            for (TextEncoderSlot s : guess.textEncoders()) {
                if (!hasTextEncoder(file, s)) {
                    missing.add(s.name() + " text encoder (" + s.prefix() + "*)");
                }
            }
        }
        String what = guess == null ? "a Stable Diffusion checkpoint" : "a complete " + guess.family() + " checkpoint";
        String hint = CheckpointLayouts.isDiffusersUnet(file.names())
                ? "; it looks like a UNet alone in diffusers layout (use it as --unet beside a full checkpoint)" : "";
        return file.path() + ": not " + what + ", missing " + String.join(", ", missing) + " (" + file.names().size()
                + " tensors)" + hint;
    }

    /**
     * This checkpoint with its UNet replaced by the one in unetFile: a single-file checkpoint, a bare LDM UNet
     * ({@code input_blocks.*}) or a diffusers-layout UNet ({@code down_blocks.*}, e.g. SDXL-Lightning). The new UNet
     * must have exactly the tensors and shapes of the one it replaces. The returned checkpoint owns both files:
     * close it (closing this one as well is harmless).
     */
    public Checkpoint withUnet(Path unetFile) throws ModelFormatException {
        return replacing("UNet", unetFile, unet, Checkpoint::unetWeights,
                (u, files) -> new Checkpoint(path, file, layout, u, vae, textEncoders, unetFile, vaePath, files));
    }

    /**
     * This checkpoint with its VAE replaced by the one in vaeFile: a single-file checkpoint, a bare LDM VAE
     * ({@code encoder.down.*}, e.g. vae-ft-mse-840000-ema-pruned) or a diffusers AutoencoderKL
     * ({@code encoder.down_blocks.*}, e.g. sdxl_vae). It must have exactly the tensors and shapes of the VAE it
     * replaces. The returned checkpoint owns both files.
     */
    public Checkpoint withVae(Path vaeFile) throws ModelFormatException {
        return replacing("VAE", vaeFile, vae, Checkpoint::vaeWeights,
                (v, files) -> new Checkpoint(path, file, layout, unet, v, textEncoders, unetPath, vaeFile, files));
    }

    /** Reads one part (UNet, VAE) of a file under canonical names. */
    private interface PartReader {
        MappedWeights read(SafeTensors file) throws ModelFormatException;
    }

    /** A checkpoint like this one with the replaced part and the files it then owns. */
    private interface Rebuild {
        Checkpoint with(MappedWeights replacement, List<SafeTensors> files) throws ModelFormatException;
    }

    /**
     * Opens partFile, reads its part, checks it fits the current one exactly and rebuilds the checkpoint owning the
     * file too; on any error the new file is closed again.
     */
    private Checkpoint replacing(String part, Path partFile, MappedWeights current, PartReader reader, Rebuild rebuild)
            throws ModelFormatException {
        SafeTensors f = SafeTensors.open(partFile);
        try {
            MappedWeights replacement = reader.read(f);
            checkFits(part, current, replacement, partFile);
            List<SafeTensors> files = new ArrayList<>(owned);
            files.add(f);
            return rebuild.with(replacement, files);
        } catch (ModelFormatException | RuntimeException e) {
            f.close();
            throw e;
        }
    }

    /** The VAE tensors of a file in any VAE layout, under LDM names. */
    public static MappedWeights vaeWeights(SafeTensors v) throws ModelFormatException {
        String where = v.path().toString();
        if (v.contains(CheckpointLayouts.VAE_PREFIX + CheckpointLayouts.VAE_MARKER)) {
            return MappedWeights.prefixed(v, CheckpointLayouts.VAE_PREFIX);
        }
        if (CheckpointLayouts.isDiffusersVae(v.names())) {
            Map<String, String> names = CheckpointLayouts.diffusersVaeToLdm(v.names(), where);
            Map<String, int[]> shapes = new LinkedHashMap<>();
            for (Map.Entry<String, String> e : names.entrySet()) {
                int[] s = v.info(e.getValue()).dims();
                if (e.getKey().contains(".attn_1.") && s.length == 2) {
                    shapes.put(e.getKey(), new int[] {s[0], s[1], 1, 1});
                }
            }
            return new MappedWeights(v, names, shapes);
        }
        if (v.contains(CheckpointLayouts.VAE_MARKER)) {
            return MappedWeights.prefixed(v, "");
        }
        throw new ModelFormatException(where + ": not a VAE file (no " + CheckpointLayouts.VAE_PREFIX + "*, encoder.down.* or "
                + "diffusers encoder.down_blocks.* tensors)");
    }

    /** The UNet tensors of a file in any UNet layout, under LDM names. */
    public static MappedWeights unetWeights(SafeTensors u) throws ModelFormatException {
        String where = u.path().toString();
        if (u.contains(CheckpointLayouts.UNET_PREFIX + CheckpointLayouts.UNET_MARKER)) {
            return MappedWeights.prefixed(u, CheckpointLayouts.UNET_PREFIX);
        }
        if (u.contains(CheckpointLayouts.UNET_MARKER)) {
            return MappedWeights.prefixed(u, "");
        }
        if (CheckpointLayouts.isDiffusersUnet(u.names())) {
            return new MappedWeights(u, CheckpointLayouts.diffusersUnetToLdm(u.names(), where));
        }
        throw new ModelFormatException(where + ": not a UNet file (no " + CheckpointLayouts.UNET_PREFIX + "*, input_blocks.* or "
                + "diffusers conv_in/down_blocks.* tensors)");
    }

    /**
     * An inpainting UNet (conv_in taking latent + mask + masked-image latent, 9 channels, or any other count) may
     * replace an ordinary one: only conv_in's input channels differ.
     */
    private static boolean inpaintConvIn(String part, String name, int[] want, int[] got) {
        return part.equals("UNet") && name.equals("input_blocks.0.0.weight") && want.length == 4 && got.length == 4
                && want[0] == got[0] && want[2] == got[2] && want[3] == got[3];
    }

    /** The replacement part must have exactly the current part's tensor names and shapes, but see inpaintConvIn. */
    private void checkFits(String part, MappedWeights current, MappedWeights replacement, Path source) throws ModelFormatException {
        String head = source + ": " + part + " does not fit " + path.getFileName() + " (" + config.family() + "): ";
        List<String> missing = new ArrayList<>();
        for (String n : current.names()) {
            if (!replacement.has(n)) {
                missing.add(n);
                continue;
            }
            int[] want = current.shape(n);
            int[] got = replacement.shape(n);
            if (!Arrays.equals(want, got) && !inpaintConvIn(part, n, want, got)) {
                throw new ModelFormatException(head + "tensor '" + n + "' is " + Arrays.toString(got)
                        + " but the checkpoint's is " + Arrays.toString(want));
            }
        }
        if (!missing.isEmpty()) {
            throw new ModelFormatException(head + missing.size() + " of " + current.names().size() + " tensors missing, e.g. '"
                    + missing.getFirst() + "'");
        }
        List<String> extra = replacement.names().stream().filter(n -> !current.has(n)).sorted().toList();
        if (!extra.isEmpty()) {
            throw new ModelFormatException(head + extra.size() + " tensors the checkpoint's " + part + " does not have, e.g. '"
                    + extra.getFirst() + "'");
        }
    }

    public Path path() {
        return path;
    }

    /** The checkpoint file itself (the UNet may come from {@link #unetPath()}). */
    public SafeTensors file() {
        return file;
    }

    /** The checkpoint's {@code __metadata__} (empty when absent). */
    public Map<String, String> metadata() {
        return file.metadata();
    }

    public Family family() {
        return layout.family();
    }

    /** Every architecture number, the prediction hint and per-component stats (read from the header at open). */
    public ModelConfig config() {
        return config;
    }

    /** The UNet under LDM names without prefix ({@code input_blocks.1.0.in_layers.0.weight}). */
    public MappedWeights unet() {
        return unet;
    }

    /** The file the UNet comes from when {@link #withUnet(Path)} replaced it, else null. */
    public Path unetPath() {
        return unetPath;
    }

    /** The file the VAE comes from when {@link #withVae(Path)} replaced it, else null. */
    public Path vaePath() {
        return vaePath;
    }

    /** The VAE under LDM names without prefix ({@code decoder.up.3.block.0.conv1.weight}). */
    public MappedWeights vae() {
        return vae;
    }

    /**
     * The text encoders in HF CLIP naming, in conditioning order: SD1 [clip_l], SD2 [clip_h], SDXL [clip_l, clip_g].
     * OpenCLIP towers are {@link OpenClipWeights} views (fused q/k/v split, text_projection transposed).
     */
    public List<Weights> textEncoders() {
        return textEncoders.stream().map(TextEncoderPart::weights).toList();
    }

    /** The text encoders with their slot (name, prefix, layout) and raw file naming. */
    public List<TextEncoderPart> textEncoderParts() {
        return textEncoders;
    }

    /** Tensors of the checkpoint file no component uses (schedule buffers, EMA copies, a replaced UNet). */
    public List<TensorInfo> unusedTensors() {
        Set<String> used = new HashSet<>();
        if (unet.file() == file) {
            used.addAll(unet.fileNames().values());
        }
        if (vae.file() == file) {
            used.addAll(vae.fileNames().values());
        }
        for (TextEncoderPart te : textEncoders) {
            used.addAll(te.raw().fileNames().values());
        }
        List<TensorInfo> out = new ArrayList<>();
        for (String n : file.names()) {
            if (!used.contains(n)) {
                out.add(file.info(n));
            }
        }
        return out;
    }

    /** Component name (unet, vae, clip_l, ...) to its weights, for tools that walk every part. */
    public Map<String, Weights> components() {
        Map<String, Weights> m = new LinkedHashMap<>();
        m.put("unet", unet);
        m.put("vae", vae);
        for (TextEncoderPart te : textEncoders) {
            m.put(te.slot().name(), te.weights());
        }
        return m;
    }

    /** {@link SafeTensors#releaseResidentPages} for every file this checkpoint maps. */
    public void releaseResidentPages() {
        for (SafeTensors s : owned) {
            s.releaseResidentPages();
        }
    }

    /**
     * {@link SafeTensors#releaseResidentPages} for the checkpoints and files among what a loader keeps open (other
     * resources are left as they are): called once a model has copied and packed its weights.
     */
    public static void releaseResidentPages(List<? extends AutoCloseable> open) {
        for (AutoCloseable c : open) {
            if (c instanceof Checkpoint k) {
                k.releaseResidentPages();
            } else if (c instanceof SafeTensors f) {
                f.releaseResidentPages();
            }
        }
    }

    @Override
    public void close() {
        for (SafeTensors s : owned) {
            s.close();
        }
    }
}
