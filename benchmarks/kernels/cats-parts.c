// CATS step parts against the dense MLP, SmolLM2-135M shapes (hidden 576, D 1536, 30 layers), weights in
// cache, one thread, best of 40: gate dense, up over half the neurons (listed), down accumulated from the
// Q8_0 neuron-major rows of half the neurons; against the dense gate / up / down.
#include "bench-weights.h"
#include <stdio.h>
int main(){
  const int H=576,D=1536,L=30; const size_t rbH=(H/32)*20, rbD=(D/32)*20, rbN=(H/32)*34;
  uint8_t *gate=bench_random_rows(L*D,H,CK_Q4_1),*up=bench_random_rows(L*D,H,CK_Q4_1),*down=bench_random_rows(L*H,D,CK_Q4_1),
          *nm=bench_random_rows(L*D,H,CK_Q8_0);
  float x[D],g[D],u[D],y[H],coef[D]; int32_t act[D]; ck_q8_block xq[D/32];
  for(int i=0;i<D;i++){x[i]=(rand()%2000-1000)/1000.0f;coef[i]=x[i];}
  int n=D/2; for(int i=0;i<n;i++) act[i]=2*i+(rand()&1); // half the neurons, ascending, scattered
  double best[6]; for(int k=0;k<6;k++) best[k]=1e9;
  for(int rep=0;rep<40;rep++){
    double t[7]; t[0]=bench_now();
    for(int l=0;l<L;l++){ck_quantize_q8(x,H,xq); ck_matvec_q8(3,gate+l*D*rbH,rbH,xq,x,g,H,0,D);} t[1]=bench_now();
    for(int l=0;l<L;l++){ck_quantize_q8(x,H,xq); ck_matvec_q8(3,up+l*D*rbH,rbH,xq,x,u,H,0,D);} t[2]=bench_now();
    for(int l=0;l<L;l++){ck_quantize_q8(x,D,xq); ck_matvec_q8(3,down+l*H*rbD,rbD,xq,x,y,D,0,H);} t[3]=bench_now();
    for(int l=0;l<L;l++){ck_quantize_q8(x,H,xq); ck_matvec_q8_rows(3,up+l*D*rbH,rbH,xq,x,u,H,act,n);} t[4]=bench_now();
    for(int l=0;l<L;l++){memset(y,0,sizeof y); ck_accumulate_rows(8,nm+l*D*rbN,rbN,H,coef,act,n,y);} t[5]=bench_now();
    for(int l=0;l<L;l++){float mag[D]; ck_cats_select(g,1,D,n,0,0,mag,act);} t[6]=bench_now();
    for(int k=0;k<6;k++) if(t[k+1]-t[k]<best[k]) best[k]=t[k+1]-t[k];
  }
  const char*names[6]={"gate dense","up dense","down dense","up, half listed","down, half accumulated (Q8_0 neuron-major)","choice (ck_cats_select)"};
  for(int k=0;k<6;k++) printf("%-45s %.3f ms\n",names[k],best[k]*1e3);
  printf("dense MLP %.3f ms; CATS MLP %.3f ms (%.3f of dense)\n",(best[0]+best[1]+best[2])*1e3,(best[0]+best[3]+best[4]+best[5])*1e3,(best[0]+best[3]+best[4]+best[5])/(best[0]+best[1]+best[2]));
}
