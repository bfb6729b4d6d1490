"""One plugin object per method: the targets of this distribution's ``saliency_bench`` entry points."""
from __future__ import annotations

from saliency_bench import method_plugin

from .methods import CumulativeGradCAM, CumulativeGradMid, FullGrad, GradCAM, GradCAMPlusPlus, GradCAMPos, GradMid

gradcam = method_plugin(GradCAM())  # the model's last block (B5)
gradcam_B1 = method_plugin(GradCAM("B1"))
gradcam_B2 = method_plugin(GradCAM("B2"))
gradcam_B3 = method_plugin(GradCAM("B3"))
gradcam_B4 = method_plugin(GradCAM("B4"))
gradcam_B5 = method_plugin(GradCAM("B5"))

gradcam_pos_B1 = method_plugin(GradCAMPos("B1"))
gradcam_pos_B2 = method_plugin(GradCAMPos("B2"))
gradcam_pos_B3 = method_plugin(GradCAMPos("B3"))
gradcam_pos_B4 = method_plugin(GradCAMPos("B4"))
gradcam_pos_B5 = method_plugin(GradCAMPos("B5"))

gradcampp_B1 = method_plugin(GradCAMPlusPlus("B1"))
gradcampp_B2 = method_plugin(GradCAMPlusPlus("B2"))
gradcampp_B3 = method_plugin(GradCAMPlusPlus("B3"))
gradcampp_B4 = method_plugin(GradCAMPlusPlus("B4"))
gradcampp_B5 = method_plugin(GradCAMPlusPlus("B5"))

gradmid_B1 = method_plugin(GradMid("B1"))
gradmid_B2 = method_plugin(GradMid("B2"))
gradmid_B3 = method_plugin(GradMid("B3"))
gradmid_B4 = method_plugin(GradMid("B4"))
gradmid_B5 = method_plugin(GradMid("B5"))

cumulative_gradcam = method_plugin(CumulativeGradCAM())
cumulative_gradmid = method_plugin(CumulativeGradMid())
fullgrad = method_plugin(FullGrad())
