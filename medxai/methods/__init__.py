"""Attribution methods: one module per method, all on the shared gradient engine."""

from medxai.methods.base import ExplainingMethod, Explanation, PathMethod, XAIMethod
from medxai.methods.blur_ig import BlurIG
from medxai.methods.gradcam import GradCAM
from medxai.methods.gradcam_plus_plus import GradCAMPlusPlus
from medxai.methods.gradient import Gradient
from medxai.methods.gradient_x_input import GradientXInput
from medxai.methods.guided_backprop import GuidedBackprop
from medxai.methods.guided_gradcam import GuidedGradCAM
from medxai.methods.guided_ig import GuidedIG
from medxai.methods.hirescam import HiResCAM
from medxai.methods.integrated_gradients import IntegratedGradients
from medxai.methods.layercam import LayerCAM
from medxai.methods.lime import LIME
from medxai.methods.occlusion import Occlusion
from medxai.methods.rise import RISE
from medxai.methods.scorecam import ScoreCAM
from medxai.methods.smoothgrad import SmoothGrad

__all__ = ["BlurIG", "ExplainingMethod", "Explanation", "GradCAM", "GradCAMPlusPlus", "Gradient", "GradientXInput", "GuidedBackprop", "GuidedGradCAM", "GuidedIG", "HiResCAM", "LayerCAM", "LIME", "IntegratedGradients", "Occlusion", "PathMethod", "RISE", "ScoreCAM", "SmoothGrad", "XAIMethod"]
