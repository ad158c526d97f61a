package jdiffusion.cli;

import java.nio.file.Path;
import jdiffusion.pipeline.GenerateRequest;
import picocli.CommandLine.Option;

/** The inpaint / outpaint flags of {@code generate} (a picocli mixin). */
public final class InpaintOptions {
    @Option(names = "--mask", paramLabel = "PNG|alpha",
            description = "inpaint the init image under a mask: a mask image (white = repaint, grey = partly under"
                    + " ComfyUI schedulers, binarised at 50%% under diffusers spacings) or 'alpha' (the init image's"
                    + " transparency: transparent = repaint)")
    String mask;

    @Option(names = "--mask-grow", paramLabel = "PX",
            description = "grow the mask by PX pixels (negative: shrink); with an inpainting model under ComfyUI"
                    + " schedulers this is VAEEncodeForInpaint's grow_mask_by (default: 0)")
    int grow;

    @Option(names = "--mask-blur", paramLabel = "PX", description = "blur the mask edge by PX pixels (default: 0)")
    double blur;

    @Option(names = "--mask-invert", description = "repaint what the mask leaves out instead")
    boolean invert;

    @Option(names = "--outpaint", paramLabel = "L,T,R,B",
            description = "extend the canvas by these pixel margins (left, top, right, bottom) and paint them")
    String outpaint;

    @Option(names = "--feather", paramLabel = "PX",
            description = "with --outpaint: blend the border into the original over PX pixels (default: 40, as"
                    + " ComfyUI's ImagePadForOutpaint; only when 2 * PX is less than the image's sides)")
    Integer feather;

    @Option(names = "--paste-back", description = "A1111 semantics: keep the original pixels outside the mask (the"
            + " result is pasted over the original through the blurred mask)")
    boolean pasteBack;

    /** The request's inpaint part, null when no mask and no outpaint margins were given. */
    GenerateRequest.Inpaint toInpaint() {
        if (mask == null && outpaint == null) {
            if (grow != 0 || blur != 0 || invert || feather != null || pasteBack) {
                throw new CliException("--mask-grow, --mask-blur, --mask-invert, --feather and --paste-back need"
                        + " --mask or --outpaint");
            }
            return null;
        }
        if (feather != null && outpaint == null) {
            throw new CliException("--feather needs --outpaint");
        }
        boolean alpha = "alpha".equals(mask);
        Path file = mask == null || alpha ? null : Path.of(mask);
        GenerateRequest.Outpaint o = outpaint == null ? null : parseOutpaint(outpaint, feather == null ? 40 : feather);
        return new GenerateRequest.Inpaint(file, alpha, grow, blur, o, pasteBack, invert);
    }

    static GenerateRequest.Outpaint parseOutpaint(String s, int feather) {
        String[] parts = s.split(",", -1);
        if (parts.length != 4) {
            throw new CliException("--outpaint takes four pixel margins L,T,R,B (e.g. 0,0,128,0), got '" + s + "'");
        }
        int[] v = new int[4];
        for (int i = 0; i < 4; i++) {
            try {
                v[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new CliException("--outpaint margin '" + parts[i] + "' is not a whole number of pixels");
            }
            if (v[i] < 0) {
                throw new CliException("--outpaint margins must be >= 0, got '" + s + "'");
            }
        }
        return new GenerateRequest.Outpaint(v[0], v[1], v[2], v[3], feather);
    }
}
