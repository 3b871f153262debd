"""Attribution methods: one module per method, all on the shared gradient engine."""

from medxai.methods.base import Explanation, PathMethod, XAIMethod
from medxai.methods.gradient import Gradient
from medxai.methods.integrated_gradients import IntegratedGradients
from medxai.methods.smoothgrad import SmoothGrad

__all__ = ["Explanation", "Gradient", "IntegratedGradients", "PathMethod", "SmoothGrad", "XAIMethod"]
