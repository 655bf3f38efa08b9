//go:build !purego

#include "textflag.h"

// func kern4x8d(k int, a *float64, ars, aks uintptr, b *float64, ldb uintptr, c *float64, ldc uintptr, add bool)
//
// C[0:4][0:8] (+)= Σ_l A(r, l)·B[l][0:8], where A(r, l) is at
// a + r·ars + l·aks (bytes) and B[l] is the 8 values at b + l·ldb.
TEXT ·kern4x8d(SB), NOSPLIT, $0-65
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ ars+16(FP), R8
	MOVQ aks+24(FP), R10
	MOVQ b+32(FP), DI
	MOVQ ldb+40(FP), R12
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R11
	LEAQ (R12)(R12*1), R13
	LEAQ (R8)(R8*2), R9
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	CMPQ CX, $2
	JL   d_tail

d_loop2:
	VMOVUPD      (DI), Y8
	VMOVUPD      32(DI), Y9
	VBROADCASTSD (SI), Y10
	VBROADCASTSD (SI)(R8*1), Y11
	VFMADD231PD  Y8, Y10, Y0
	VFMADD231PD  Y9, Y10, Y1
	VBROADCASTSD (SI)(R8*2), Y12
	VFMADD231PD  Y8, Y11, Y2
	VFMADD231PD  Y9, Y11, Y3
	VBROADCASTSD (SI)(R9*1), Y13
	VFMADD231PD  Y8, Y12, Y4
	VFMADD231PD  Y9, Y12, Y5
	VFMADD231PD  Y8, Y13, Y6
	VFMADD231PD  Y9, Y13, Y7
	ADDQ         R10, SI
	VMOVUPD      (DI)(R12*1), Y8
	VMOVUPD      32(DI)(R12*1), Y9
	VBROADCASTSD (SI), Y10
	VBROADCASTSD (SI)(R8*1), Y11
	VFMADD231PD  Y8, Y10, Y0
	VFMADD231PD  Y9, Y10, Y1
	VBROADCASTSD (SI)(R8*2), Y12
	VFMADD231PD  Y8, Y11, Y2
	VFMADD231PD  Y9, Y11, Y3
	VBROADCASTSD (SI)(R9*1), Y13
	VFMADD231PD  Y8, Y12, Y4
	VFMADD231PD  Y9, Y12, Y5
	VFMADD231PD  Y8, Y13, Y6
	VFMADD231PD  Y9, Y13, Y7
	ADDQ         R10, SI
	ADDQ         R13, DI
	SUBQ         $2, CX
	CMPQ         CX, $2
	JGE          d_loop2

d_tail:
	TESTQ CX, CX
	JE    d_store
	VMOVUPD      (DI), Y8
	VMOVUPD      32(DI), Y9
	VBROADCASTSD (SI), Y10
	VBROADCASTSD (SI)(R8*1), Y11
	VFMADD231PD  Y8, Y10, Y0
	VFMADD231PD  Y9, Y10, Y1
	VBROADCASTSD (SI)(R8*2), Y12
	VFMADD231PD  Y8, Y11, Y2
	VFMADD231PD  Y9, Y11, Y3
	VBROADCASTSD (SI)(R9*1), Y13
	VFMADD231PD  Y8, Y12, Y4
	VFMADD231PD  Y9, Y12, Y5
	VFMADD231PD  Y8, Y13, Y6
	VFMADD231PD  Y9, Y13, Y7

d_store:
	MOVBQZX add+64(FP), AX
	TESTQ   AX, AX
	JE      d_put
	VADDPD  (DX), Y0, Y0
	VADDPD  32(DX), Y1, Y1
	VMOVUPD Y0, (DX)
	VMOVUPD Y1, 32(DX)
	ADDQ    R11, DX
	VADDPD  (DX), Y2, Y2
	VADDPD  32(DX), Y3, Y3
	VMOVUPD Y2, (DX)
	VMOVUPD Y3, 32(DX)
	ADDQ    R11, DX
	VADDPD  (DX), Y4, Y4
	VADDPD  32(DX), Y5, Y5
	VMOVUPD Y4, (DX)
	VMOVUPD Y5, 32(DX)
	ADDQ    R11, DX
	VADDPD  (DX), Y6, Y6
	VADDPD  32(DX), Y7, Y7
	VMOVUPD Y6, (DX)
	VMOVUPD Y7, 32(DX)
	VZEROUPPER
	RET

d_put:
	VMOVUPD Y0, (DX)
	VMOVUPD Y1, 32(DX)
	ADDQ    R11, DX
	VMOVUPD Y2, (DX)
	VMOVUPD Y3, 32(DX)
	ADDQ    R11, DX
	VMOVUPD Y4, (DX)
	VMOVUPD Y5, 32(DX)
	ADDQ    R11, DX
	VMOVUPD Y6, (DX)
	VMOVUPD Y7, 32(DX)
	VZEROUPPER
	RET

// func kern4x16s(k int, a *float32, ars, aks uintptr, b *float32, ldb uintptr, c *float32, ldc uintptr, add bool)
//
// The float32 kernel: C[0:4][0:16] (+)= Σ_l A(r, l)·B[l][0:16].
TEXT ·kern4x16s(SB), NOSPLIT, $0-65
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ ars+16(FP), R8
	MOVQ aks+24(FP), R10
	MOVQ b+32(FP), DI
	MOVQ ldb+40(FP), R12
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R11
	LEAQ (R12)(R12*1), R13
	LEAQ (R8)(R8*2), R9
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	CMPQ CX, $2
	JL   s_tail

s_loop2:
	VMOVUPS      (DI), Y8
	VMOVUPS      32(DI), Y9
	VBROADCASTSS (SI), Y10
	VBROADCASTSS (SI)(R8*1), Y11
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VBROADCASTSS (SI)(R8*2), Y12
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS (SI)(R9*1), Y13
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         R10, SI
	VMOVUPS      (DI)(R12*1), Y8
	VMOVUPS      32(DI)(R12*1), Y9
	VBROADCASTSS (SI), Y10
	VBROADCASTSS (SI)(R8*1), Y11
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VBROADCASTSS (SI)(R8*2), Y12
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS (SI)(R9*1), Y13
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         R10, SI
	ADDQ         R13, DI
	SUBQ         $2, CX
	CMPQ         CX, $2
	JGE          s_loop2

s_tail:
	TESTQ CX, CX
	JE    s_store
	VMOVUPS      (DI), Y8
	VMOVUPS      32(DI), Y9
	VBROADCASTSS (SI), Y10
	VBROADCASTSS (SI)(R8*1), Y11
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VBROADCASTSS (SI)(R8*2), Y12
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS (SI)(R9*1), Y13
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7

s_store:
	MOVBQZX add+64(FP), AX
	TESTQ   AX, AX
	JE      s_put
	VADDPS  (DX), Y0, Y0
	VADDPS  32(DX), Y1, Y1
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y2, Y2
	VADDPS  32(DX), Y3, Y3
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y4, Y4
	VADDPS  32(DX), Y5, Y5
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y6, Y6
	VADDPS  32(DX), Y7, Y7
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	VZEROUPPER
	RET

s_put:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ    R11, DX
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ    R11, DX
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R11, DX
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	VZEROUPPER
	RET

// func adam4(n int, p, grad, m1, m2 *float64, c *adamConsts)
//
// Adam's update of n/4·4 parameters, four at a time, with the operations of
// adamGo in the same order (no fused multiply-adds), so results are the
// same bits as the portable loop.
TEXT ·adam4(SB), NOSPLIT, $0-48
	MOVQ n+0(FP), CX
	MOVQ p+8(FP), DI
	MOVQ grad+16(FP), SI
	MOVQ m1+24(FP), R8
	MOVQ m2+32(FP), R9
	MOVQ c+40(FP), AX
	VBROADCASTSD 0(AX), Y10
	VBROADCASTSD 8(AX), Y11
	VBROADCASTSD 16(AX), Y12
	VBROADCASTSD 24(AX), Y13
	VBROADCASTSD 32(AX), Y14
	VBROADCASTSD 40(AX), Y15
	VBROADCASTSD 48(AX), Y9
	SHRQ $2, CX
	JZ   adam_done

adam_loop:
	VMOVUPD (SI), Y0
	VMULPD  (R8), Y10, Y1
	VMULPD  Y0, Y11, Y2
	VADDPD  Y2, Y1, Y1
	VMOVUPD Y1, (R8)
	VMULPD  (R9), Y12, Y3
	VMULPD  Y0, Y13, Y4
	VMULPD  Y0, Y4, Y4
	VADDPD  Y4, Y3, Y3
	VMOVUPD Y3, (R9)
	VSQRTPD Y3, Y5
	VMULPD  Y15, Y5, Y5
	VADDPD  Y9, Y5, Y5
	VMULPD  Y14, Y1, Y6
	VDIVPD  Y5, Y6, Y6
	VMOVUPD (DI), Y7
	VSUBPD  Y6, Y7, Y7
	VMOVUPD Y7, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	DECQ    CX
	JNZ     adam_loop

adam_done:
	VZEROUPPER
	RET

// func l2grad4(n int, grad, w *float64, l2 float64) float64
//
// grad[i] += l2·w[i] for n/4·4 elements, four at a time; returns Σ w[i]²
// summed in four lanes, added lane 0 to 3.
TEXT ·l2grad4(SB), NOSPLIT, $0-40
	MOVQ         n+0(FP), CX
	MOVQ         grad+8(FP), DI
	MOVQ         w+16(FP), SI
	VBROADCASTSD l2+24(FP), Y10
	VXORPD       Y2, Y2, Y2
	SHRQ         $2, CX
	JZ           l2_sum

l2_loop:
	VMOVUPD     (SI), Y0
	VMULPD      Y0, Y10, Y1
	VADDPD      (DI), Y1, Y1
	VMOVUPD     Y1, (DI)
	VFMADD231PD Y0, Y0, Y2
	ADDQ        $32, DI
	ADDQ        $32, SI
	DECQ        CX
	JNZ         l2_loop

l2_sum:
	VEXTRACTF128 $1, Y2, X3
	VUNPCKHPD    X2, X2, X4
	VUNPCKHPD    X3, X3, X5
	VADDSD       X4, X2, X2
	VADDSD       X3, X2, X2
	VADDSD       X5, X2, X2
	VMOVSD       X2, ret+32(FP)
	VZEROUPPER
	RET

// func adam8s(n int, p, grad, m1, m2 *float32, c *adamConsts[float32])
//
// adam4 in float32, eight at a time, for n/8·8 parameters.
TEXT ·adam8s(SB), NOSPLIT, $0-48
	MOVQ n+0(FP), CX
	MOVQ p+8(FP), DI
	MOVQ grad+16(FP), SI
	MOVQ m1+24(FP), R8
	MOVQ m2+32(FP), R9
	MOVQ c+40(FP), AX
	VBROADCASTSS 0(AX), Y10
	VBROADCASTSS 4(AX), Y11
	VBROADCASTSS 8(AX), Y12
	VBROADCASTSS 12(AX), Y13
	VBROADCASTSS 16(AX), Y14
	VBROADCASTSS 20(AX), Y15
	VBROADCASTSS 24(AX), Y9
	SHRQ $3, CX
	JZ   adams_done

adams_loop:
	VMOVUPS (SI), Y0
	VMULPS  (R8), Y10, Y1
	VMULPS  Y0, Y11, Y2
	VADDPS  Y2, Y1, Y1
	VMOVUPS Y1, (R8)
	VMULPS  (R9), Y12, Y3
	VMULPS  Y0, Y13, Y4
	VMULPS  Y0, Y4, Y4
	VADDPS  Y4, Y3, Y3
	VMOVUPS Y3, (R9)
	VSQRTPS Y3, Y5
	VMULPS  Y15, Y5, Y5
	VADDPS  Y9, Y5, Y5
	VMULPS  Y14, Y1, Y6
	VDIVPS  Y5, Y6, Y6
	VMOVUPS (DI), Y7
	VSUBPS  Y6, Y7, Y7
	VMOVUPS Y7, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	DECQ    CX
	JNZ     adams_loop

adams_done:
	VZEROUPPER
	RET

// func l2grad8s(n int, grad, w *float32, l2 float32) float32
//
// l2grad4 in float32, eight at a time: Σ w[i]² is summed in eight lanes,
// then pairwise.
TEXT ·l2grad8s(SB), NOSPLIT, $0-36
	MOVQ         n+0(FP), CX
	MOVQ         grad+8(FP), DI
	MOVQ         w+16(FP), SI
	VBROADCASTSS l2+24(FP), Y10
	VXORPS       Y2, Y2, Y2
	SHRQ         $3, CX
	JZ           l2s_sum

l2s_loop:
	VMOVUPS     (SI), Y0
	VMULPS      Y0, Y10, Y1
	VADDPS      (DI), Y1, Y1
	VMOVUPS     Y1, (DI)
	VFMADD231PS Y0, Y0, Y2
	ADDQ        $32, DI
	ADDQ        $32, SI
	DECQ        CX
	JNZ         l2s_loop

l2s_sum:
	VEXTRACTF128 $1, Y2, X3
	VADDPS       X3, X2, X2
	VHADDPS      X2, X2, X2
	VHADDPS      X2, X2, X2
	VMOVSS       X2, ret+32(FP)
	VZEROUPPER
	RET
